"""Cost of the alignment layers in one denoising step, as ratios measured in one run.

Times three networks on the same weights and inputs (one classifier-free-guidance step: 2 copies of
views x frames latents):
  mvdream   MVDream UNet alone (multi-view attention, no motion modules)
  motion    MVDream + AnimateDiff motion modules, alignment skipped (training-free)
  full      MVDream + motion modules + alignment layers (Vivid-ZOO)
Goal: full / motion <= 1.03. Full-size shapes by default (random weights); absolute times only mean
something on a GPU, so on the CPU read the ratios.

    python bench/step_time.py [--tiny] [--views 4 --frames 16 --size 256] [--device cuda --dtype fp16]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from vividzoo_core.checkpoints import load_motion_module, load_mvdream
from vividzoo_core.diffusers_host import VividZooUNet, build_unet
from vividzoo_core.layout import VideoLayout
from vividzoo_core.network import MotionModuleSet
from vividzoo_core.pipeline import resolve_device, resolve_dtype
from vividzoo_core.synthetic_weights import write_test_weights


def time_step(network, inputs, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            network(*inputs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny widths instead of the real shapes")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=256, help="image size in pixels (latent = size / 8)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)

    with tempfile.TemporaryDirectory() as folder:
        files = write_test_weights(folder, full_size=not args.tiny)
        checkpoint = load_mvdream(files.mvdream)
        motion = load_motion_module(files.motion["v2"])
    unet = build_unet(checkpoint)
    modules = MotionModuleSet.from_checkpoint(motion)
    for parameter in modules.alignment_parameters():
        torch.nn.init.normal_(parameter, std=0.01)
    layout = VideoLayout(args.views, args.frames)
    batch = 2 * layout.images
    latent = args.size // 8
    inputs = (
        torch.randn(batch, 4, latent, latent, device=device, dtype=dtype),
        torch.tensor(500, device=device),
        torch.randn(batch, 77, checkpoint.unet_shape.context_dim, device=device, dtype=dtype),
        torch.randn(batch, 16, device=device, dtype=dtype),
        layout,
    )
    results = {}
    mvdream = VividZooUNet(unet).to(device, dtype)
    results["mvdream"] = time_step(mvdream, inputs, args.repeats, device)
    full = VividZooUNet(build_unet(checkpoint), modules).to(device, dtype)
    modules.set_alignment_enabled(False)
    results["motion"] = time_step(full, inputs, args.repeats, device)
    modules.set_alignment_enabled(True)
    results["full"] = time_step(full, inputs, args.repeats, device)

    shape = "tiny" if args.tiny else "full-size"
    print(f"{shape} network, {args.views} views x {args.frames} frames x {args.size} px, CFG batch {batch}, "
          f"{device.type} {str(dtype).replace('torch.', '')}, median of {args.repeats}")
    for name, seconds in results.items():
        print(f"  {name:8s} {seconds:8.3f} s/step")
    print(f"  motion / mvdream = {results['motion'] / results['mvdream']:.3f}")
    print(f"  full / motion    = {results['full'] / results['motion']:.3f}   (alignment cost; goal <= 1.03)")
    print(f"  full / mvdream   = {results['full'] / results['mvdream']:.3f}")


if __name__ == "__main__":
    main()

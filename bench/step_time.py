"""Cost of the alignment layers in one denoising step, as ratios measured in one run.

Times three networks on the same weights and inputs (one classifier-free-guidance step: 2 copies of
views x frames latents):
  mvdream   MVDream UNet alone (multi-view attention, no motion modules)
  motion    MVDream + AnimateDiff motion modules, alignment skipped (training-free)
  full      MVDream + motion modules + alignment layers computed beside proj_in / proj_out (the
            form training needs)
  folded    the same network with the alignment added into proj_in / proj_out, as the pipeline
            and the ComfyUI nodes sample with it (identical outputs)
Goal: the alignment costs at most 3% of a step: full / motion <= 1.03 (folded / motion: 1). Full-size shapes
by default (random weights); absolute times only mean something on a GPU, so on the CPU read the ratios. The
variants are timed in alternation, round after round, so drift of a busy machine hits all of them alike;
still, a CPU's run-to-run noise (a few percent) is as large as the alignment's share. The FLOP ratios
(PyTorch's FLOP counter on the meta device, at the same shapes) are exact and do not depend on the machine.

    python bench/step_time.py [--tiny] [--views 4 --frames 16 --size 256] [--device cuda --dtype fp16]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from diffusers import UNet2DConditionModel

from vividzoo_core.checkpoints import load_motion_module, load_mvdream
from vividzoo_core.devices import resolve_device, resolve_dtype
from vividzoo_core.diffusers_host import VividZooUNet, build_unet
from vividzoo_core.diffusers_host.unet import unet_config
from vividzoo_core.layout import VideoLayout
from vividzoo_core.network import MotionModuleSet
from vividzoo_core.synthetic_weights import write_test_weights


def time_once(network, inputs, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        network(*inputs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def flops(shape, channels: dict[str, int], layout: VideoLayout, latent: int, with_motion: bool, aligned: bool) -> int:
    """Exact FLOPs of one guidance step, counted on the meta device (no memory, no arithmetic)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_config(shape))
        modules = MotionModuleSet(channels, 32, "v2") if with_motion else None
    if modules is not None:
        modules.set_alignment_enabled(aligned)
    network = VividZooUNet(unet, modules)
    batch = 2 * layout.images
    inputs = (torch.empty(batch, 4, latent, latent, device="meta"), torch.tensor(500, device="meta"),
              torch.empty(batch, 77, shape.context_dim, device="meta"),
              torch.empty(batch, 16, device="meta"), layout)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(*inputs)
    return counter.get_total_flops()


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
    mvdream = VividZooUNet(build_unet(checkpoint)).to(device, dtype)
    modules = MotionModuleSet.from_checkpoint(motion)
    full = VividZooUNet(build_unet(checkpoint), modules).to(device, dtype)
    shape, channels = checkpoint.unet_shape, motion.channels
    del checkpoint, motion  # only two networks stay in memory: the full size must fit a 24 GB machine
    for parameter in modules.alignment_parameters():
        torch.nn.init.normal_(parameter, std=0.01)
    alignment = {k: v.clone() for k, v in modules.alignment_state_dict().items()}
    projections = {k: v.clone() for k, v in modules.state_dict().items() if ".proj_" in k}
    layout = VideoLayout(args.views, args.frames)
    batch = 2 * layout.images
    latent = args.size // 8
    inputs = (
        torch.randn(batch, 4, latent, latent, device=device, dtype=dtype),
        torch.tensor(500, device=device),
        torch.randn(batch, 77, shape.context_dim, device=device, dtype=dtype),
        torch.randn(batch, 16, device=device, dtype=dtype),
        layout,
    )

    def unfolded(enabled: bool):
        def prepare() -> None:
            modules.load_state_dict(projections, strict=False)
            modules.load_alignment(alignment)
            modules.set_alignment_enabled(enabled)
        return prepare

    def folded() -> None:
        unfolded(False)()
        modules.fold_alignment(alignment)

    # (set-up outside the timed call, network): one set of weights serves every motion variant
    variants = {"mvdream": (lambda: None, mvdream), "motion": (unfolded(False), full), "full": (unfolded(True), full),
                "folded": (folded, full)}
    for prepare, network in variants.values():  # warm-up
        prepare()
        time_once(network, inputs, device)
    samples = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, (prepare, network) in variants.items():
            prepare()
            samples[name].append(time_once(network, inputs, device))
    results = {name: statistics.median(times) for name, times in samples.items()}
    with torch.no_grad():
        folded()
        folded_output = full(*inputs)
        unfolded(True)()
        torch.testing.assert_close(folded_output, full(*inputs), atol=1e-3, rtol=1e-3)  # the same network
    counted = {name: flops(shape, channels, layout, latent, name != "mvdream", name == "full") for name in variants}

    print(
        f"{'tiny' if args.tiny else 'full-size'} network, {args.views} views x {args.frames} frames x "
        f"{args.size} px, CFG batch {batch}, "
        f"{device.type} {str(dtype).replace('torch.', '')}, median of {args.repeats} alternating rounds"
    )
    for name, seconds in results.items():
        print(f"  {name:8s} {seconds:8.3f} s/step  {counted[name] / 1e12:8.2f} TFLOP  "
              f"(all: {[round(t, 3) for t in samples[name]]})")
    print(f"  motion / mvdream = {results['motion'] / results['mvdream']:.3f} time, "
          f"{counted['motion'] / counted['mvdream']:.3f} FLOPs")
    print(f"  full / motion    = {results['full'] / results['motion']:.3f} time, "
          f"{counted['full'] / counted['motion']:.4f} FLOPs   (alignment computed beside; goal <= 1.03)")
    print(f"  folded / motion  = {results['folded'] / results['motion']:.3f} time, "
          f"{counted['folded'] / counted['motion']:.4f} FLOPs   (alignment folded in, as used for sampling)")

if __name__ == "__main__":
    main()

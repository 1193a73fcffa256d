"""Step time of the patched MODEL under ComfyUI's sampler against the standalone pipeline, as a ratio.

Same weights (random, in the real formats), same latent size, same DDIM steps and guidance (both
batch the cond and uncond branches together); VAE decoding is left out of both. The two are timed
alternately, several times, in one run. Goal: ComfyUI / standalone within 10%.

Run with ComfyUI's Python (it imports ComfyUI headless, on the CPU unless --gpu):

    python bench/comfyui_vs_standalone.py /path/to/ComfyUI [--full-size] [--views 4 --frames 8 --size 64]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from comfyui_session import start_comfyui


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("comfyui", type=Path)
    parser.add_argument("--full-size", action="store_true", help="real shapes (slow on a CPU)")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--comfyui-cpu-attention", action="store_true",
                        help="keep ComfyUI's CPU default (sub-quadratic attention) instead of PyTorch's SDPA, "
                             "which ComfyUI uses on NVIDIA GPUs and the standalone pipeline uses everywhere")
    args = parser.parse_args()

    start_comfyui(args.comfyui, gpu=args.gpu, pytorch_attention=not args.comfyui_cpu_attention)
    import comfy.sample
    import folder_paths
    import torch
    from vividzoo_pack.nodes.loaders import MotionModuleLoader
    from vividzoo_pack.nodes.mvdream_model import load_mvdream_model
    from vividzoo_pack.nodes.patching import patch_vividzoo
    from vividzoo_pack.vividzoo_core.cameras import orbit
    from vividzoo_pack.vividzoo_core.pipeline import VividZooPipeline
    from vividzoo_pack.vividzoo_core.settings import GenerationSettings
    from vividzoo_pack.vividzoo_core.synthetic_weights import write_test_weights

    folder = tempfile.mkdtemp()
    files = write_test_weights(folder, full_size=args.full_size)
    folder_paths.add_model_folder_path("animatediff_models", folder)
    device = "cuda" if args.gpu else "cpu"
    dtype = "fp16" if args.gpu else "fp32"

    standalone = VividZooPipeline.from_files(files.mvdream, files.motion["v2"], None, device, dtype, log=lambda m: None)
    settings = GenerationSettings("a corgi running, 3d asset", views=args.views, frames=args.frames,
                                  width=args.size, height=args.size, steps=args.steps, seed=0)
    rig = orbit(args.views)

    model, clip, _, _ = load_mvdream_model(str(files.mvdream), with_vae=False)
    motion = MotionModuleLoader.execute(files.motion["v2"].name).args[0]
    patched = patch_vividzoo(model, rig, motion, None, "linear")
    positive = clip.encode_from_tokens_scheduled(clip.tokenize(settings.prompt))
    negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    latent = torch.zeros(args.views * args.frames, 4, args.size // 8, args.size // 8)
    noise = comfy.sample.prepare_noise(latent, 0)

    def comfyui_run() -> None:
        comfy.sample.sample(patched, noise, args.steps, settings.cfg, "ddim", "ddim_uniform", positive, negative,
                            latent, disable_pbar=True, seed=0)

    def standalone_run() -> None:
        standalone.denoise(settings, rig)
        if args.gpu:
            torch.cuda.synchronize()

    times = {"comfyui": [], "standalone": []}
    for run in (comfyui_run, standalone_run):  # warm-up: loading, kernel selection
        run()
    for _ in range(args.repeats):
        for name, run in (("comfyui", comfyui_run), ("standalone", standalone_run)):
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) / args.steps)
    comfy_step, standalone_step = (statistics.median(times[k]) for k in ("comfyui", "standalone"))
    shape = "full-size" if args.full_size else "tiny"
    attention = "sub-quadratic" if args.comfyui_cpu_attention else "PyTorch SDPA"
    print(
        f"{shape} random weights, {args.views} views x {args.frames} frames x {args.size} px, {args.steps} DDIM "
        f"steps with CFG, {device} {dtype}, ComfyUI attention: {attention}, median of {args.repeats} alternating runs"
    )
    print(f"  ComfyUI KSampler path  {comfy_step:.3f} s/step  (all: {[round(t, 3) for t in times['comfyui']]})")
    print(f"  standalone pipeline    {standalone_step:.3f} s/step  (all: {[round(t, 3) for t in times['standalone']]})")
    print(f"  ComfyUI / standalone = {comfy_step / standalone_step:.3f}   (goal: within 10%)")


if __name__ == "__main__":
    main()

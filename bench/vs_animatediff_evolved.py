"""Step cost of Vivid-ZOO against AnimateDiff-Evolved in one ComfyUI, at equal latent pixels, as a ratio.

Vivid-ZOO samples ``views x frames`` images at ``size`` px; AnimateDiff-Evolved samples ``frames``
images at ``2 x size`` px (by default): the same number of latent pixels. Both use the same
motion-module file (the mm_sd_v15_v2 layout), the same SD 1.5 UNet weights (MVDream's, without its
camera MLP for AnimateDiff), the same prompt, DDIM and guidance, and PyTorch attention. Sampling
runs alternate between the two, after one warm-up each. Goal: Vivid-ZOO / AnimateDiff-Evolved at
most 1.10.

Needs AnimateDiff-Evolved installed next to the pack (custom_nodes/ComfyUI-AnimateDiff-Evolved) or
its folder given. Run with ComfyUI's Python (it imports ComfyUI headless, on the CPU unless --gpu):

    python bench/vs_animatediff_evolved.py /path/to/ComfyUI [--animatediff-evolved DIR] [--rounds 2]

Weights are full-size (random, written to a temporary folder; AnimateDiff-Evolved builds SD 1.5
widths only), so on a CPU each step takes tens of seconds: keep --rounds small.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the shared custom-node loader
from custom_nodes import import_custom_nodes  # noqa: E402

ADE_FOLDER = "ComfyUI-AnimateDiff-Evolved"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("comfyui", type=Path)
    parser.add_argument("--animatediff-evolved", type=Path, default=REPO.parent / ADE_FOLDER,
                        help=f"AnimateDiff-Evolved's folder (default: {ADE_FOLDER} next to this pack)")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=128, help="Vivid-ZOO's image size; AnimateDiff gets sqrt(views) x")
    parser.add_argument("--steps", type=int, default=1, help="DDIM steps per timed sample")
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--rounds", type=int, default=2, help="timed samples of each, alternated")
    parser.add_argument("--gpu", action="store_true")
    args = parser.parse_args()
    animatediff_size = round(args.size * args.views**0.5)
    if animatediff_size**2 != args.views * args.size**2 or animatediff_size % 8:
        parser.error(f"--views {args.views} has no equal-latent-pixel AnimateDiff size; use 1, 4, 9 or 16 views")
    if not (args.animatediff_evolved / "__init__.py").is_file():
        parser.error(f"AnimateDiff-Evolved is not at {args.animatediff_evolved}; install it next to the pack "
                     f"(custom_nodes/{ADE_FOLDER}) or give --animatediff-evolved DIR")

    sys.path.insert(0, str(args.comfyui))
    from comfy.cli_args import args as comfy_args

    comfy_args.cpu = not args.gpu
    comfy_args.use_pytorch_cross_attention = True
    import comfy.sample
    import comfy.sd
    import folder_paths
    import torch

    import_custom_nodes(REPO)
    from vividzoo_pack.nodes.loaders import MotionModuleLoader
    from vividzoo_pack.nodes.mvdream_model import load_mvdream_model
    from vividzoo_pack.nodes.patching import patch_vividzoo
    from vividzoo_pack.vividzoo_core.cameras import orbit
    from vividzoo_pack.vividzoo_core.synthetic_weights import write_test_weights

    folder = tempfile.TemporaryDirectory()
    files = write_test_weights(folder.name, full_size=True)  # AnimateDiff-Evolved builds SD 1.5 widths only
    folder_paths.add_model_folder_path("animatediff_models", folder.name)
    ade_nodes = import_custom_nodes(args.animatediff_evolved, "animatediff_evolved").NODE_CLASS_MAPPINGS

    mvdream, clip, _, checkpoint = load_mvdream_model(str(files.mvdream), with_vae=False)
    motion_name = files.motion["v2"].name
    vividzoo = patch_vividzoo(
        mvdream, orbit(args.views), MotionModuleLoader.execute(motion_name).args[0], None, "linear"
    )
    plain_unet = {k: v for k, v in checkpoint.unet.items() if not k.startswith("camera_embed.")}
    sd15 = comfy.sd.load_diffusion_model_state_dict(plain_unet)
    ade_motion = ade_nodes["ADE_LoadAnimateDiffModel"]().load_motion_model(motion_name)[0]
    ade_models = ade_nodes["ADE_ApplyAnimateDiffModelSimple"]().apply_motion_model(ade_motion)[0]
    animatediff = ade_nodes["ADE_UseEvolvedSampling"]().use_evolved_sampling(sd15, "autoselect",
                                                                            ade_models)[0]
    folder.cleanup()  # everything is loaded; the files are several GB

    positive = clip.encode_from_tokens_scheduled(clip.tokenize("a corgi running, 3d asset"))
    negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))

    def sampler(model, images: int, size: int):
        latent = torch.zeros(images, 4, size // 8, size // 8)
        noise = comfy.sample.prepare_noise(latent, 0)

        def run() -> None:
            comfy.sample.sample(model, noise, args.steps, args.cfg, "ddim", "ddim_uniform", positive, negative,
                                latent, disable_pbar=True, seed=0)
            if args.gpu:
                torch.cuda.synchronize()

        return run

    runs = {"vividzoo": sampler(vividzoo, args.views * args.frames, args.size),
            "animatediff_evolved": sampler(animatediff, args.frames, animatediff_size)}
    for run in runs.values():  # warm-up: loading, injection, kernel selection
        run()
    # On the CPU, this process's CPU time: other work on the machine barely changes it, wall time it does.
    clock = time.perf_counter if args.gpu else time.process_time
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            start = clock()
            run()
            times[name].append((clock() - start) / args.steps)
    vividzoo_step, animatediff_step = (statistics.median(times[name]) for name in runs)
    device = "cuda (wall time)" if args.gpu else f"cpu ({torch.get_num_threads()} threads, CPU time of the process)"
    print(f"full-size random weights, {device}, PyTorch attention, {args.steps} "
          f"DDIM step(s) per sample, CFG {args.cfg:g}, median of {args.rounds} alternated rounds")
    print(f"  Vivid-ZOO            {args.views} views x {args.frames} frames x {args.size} px  "
          f"{vividzoo_step:.3f} s/step  (all: {[round(t, 3) for t in times['vividzoo']]})")
    print(f"  AnimateDiff-Evolved  {args.frames} frames x {animatediff_size} px  "
          f"{animatediff_step:.3f} s/step  (all: {[round(t, 3) for t in times['animatediff_evolved']]})")
    print(f"  Vivid-ZOO / AnimateDiff-Evolved = {vividzoo_step / animatediff_step:.3f}   (goal: at most 1.10)")


if __name__ == "__main__":
    main()

"""The ``vividzoo`` command: generate, demo, inspect, make-test-weights, dataset, train, eval.

Errors about the user's input print one clear line and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from .cli_options import (
    any_float, camera_file, device, existing_dir, existing_file, float_range, int_range, non_negative_int,
    output_dir, positive_int, seed,
)
from .errors import VividZooError
from .evaluation.prompts import read_prompts

DEMO_PROMPT = "a corgi dog running, 3d asset"


def _add_generation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--negative", default="", help="negative prompt (default: empty, as in the paper)")
    parser.add_argument("--views", type=positive_int, default=4, help="camera views around the object (default 4)")
    parser.add_argument("--frames", type=positive_int, default=16, help="frames per view (default 16)")
    parser.add_argument("--size", type=int_range(8, multiple=8), default=256,
                        help="width and height in pixels, a multiple of 8 (default 256)")
    parser.add_argument("--steps", type=int_range(1, 1000), default=50, help="DDIM steps (default 50)")
    parser.add_argument("--cfg", type=float_range(0), default=7.5, help="classifier-free guidance scale (default 7.5)")
    parser.add_argument("--elevation", type=float_range(-90, 90, low_open=True, high_open=True), default=15.0,
                        help="camera elevation in degrees (default 15)")
    parser.add_argument("--azimuth-start", type=any_float, default=0.0, help="azimuth of the first view in degrees")
    parser.add_argument("--turn", type=any_float, default=0.0,
                        help="degrees the camera ring turns over the clip while the object moves (default 0: static)")
    parser.add_argument("--cameras", type=camera_file,
                        help="camera JSON or transforms.json instead of the orbit options")
    parser.add_argument("--seed", type=seed, help="random seed (default: a random one, printed)")
    parser.add_argument("--beta-schedule", choices=("linear", "scaled_linear"), default="linear",
                        help="noise schedule: linear (the paper, AnimateDiff) or scaled_linear (MVDream)")
    parser.add_argument("--context-frames", type=positive_int,
                        help="frames per sliding context window, for videos longer than the motion module's limit")
    parser.add_argument("--context-overlap", type=non_negative_int, default=4,
                        help="frames shared by neighbouring windows")
    parser.add_argument("--fps", type=float_range(0.1, 240), default=8.0,
                        help="frames per second of the written videos (0.1 to 240)")
    parser.add_argument("--device", type=device, default="auto", help="auto (CUDA when present), cuda, cuda:N or cpu")
    parser.add_argument("--dtype", default="auto", choices=("auto", "fp16", "bf16", "fp32"),
                        help="compute precision (auto: fp16 on CUDA, fp32 on CPU)")
    parser.add_argument("--out", type=output_dir, required=True, help="output folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vividzoo", description="Vivid-ZOO: text to multi-view video.")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="text to multi-view video from local checkpoint files")
    generate.add_argument("--mvdream", type=existing_file, required=True, help="MVDream checkpoint, e.g. sd-v1.5-4view.pt")
    generate.add_argument("--motion", type=existing_file, required=True, help="AnimateDiff motion module, e.g. mm_sd_v15_v2.ckpt")
    generate.add_argument("--alignment", type=existing_file, help="trained alignment layers (.safetensors); none: training-free")
    prompts = generate.add_mutually_exclusive_group(required=True)
    prompts.add_argument("--prompt", help="text prompt; MVDream prompts usually end with ', 3d asset'")
    prompts.add_argument("--prompts", type=existing_file, help="text file with one prompt per line (# comments allowed)")
    _add_generation_options(generate)

    demo = commands.add_parser("demo", help="no downloads: random tiny weights, the whole pipeline, in seconds")
    demo.add_argument("--out", type=output_dir, required=True, help="output folder")

    inspect = commands.add_parser("inspect", help="say what a checkpoint file is, or why it cannot be used")
    inspect.add_argument("path", type=existing_file)
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")

    weights = commands.add_parser("make-test-weights", help="write random-weight files in the real formats")
    destination = weights.add_mutually_exclusive_group(required=True)
    destination.add_argument("directory", type=output_dir, nargs="?")
    destination.add_argument("--comfyui-models", type=existing_dir, metavar="MODELS_DIR",
                             help="ComfyUI's models folder: write TEST-RANDOM-* files into its vividzoo/ and "
                                  "animatediff_models/ folders, to try the nodes and workflows without real weights")
    weights.add_argument("--full-size", action="store_true", help="real shapes (several GB) instead of tiny ones")
    from .data.cli import add_dataset_commands
    from .evaluation.cli import add_evaluation_commands
    from .training.cli import add_training_commands

    add_dataset_commands(commands)
    add_training_commands(commands)
    add_evaluation_commands(commands)
    return parser


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:48] or "prompt"


def check_generation_options(args: argparse.Namespace) -> None:
    """What no single option can check alone, before any weights load."""
    from .layout import VideoLayout
    from .pipeline import resolve_device, resolve_dtype

    if args.cameras is not None:
        args.cameras.for_layout(VideoLayout(args.views, args.frames))
    resolve_dtype(args.dtype, resolve_device(args.device))


def run_generation(args: argparse.Namespace, prompts: list[str], log: Callable[[str], None] = print) -> list[Path]:
    from tqdm import tqdm

    from .cameras import moving_orbit
    from .diffusers_host import quiet_diffusers
    from .pipeline import GenerationSettings, VividZooPipeline
    from .video import save_video_or_rescue

    quiet_diffusers()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    pipeline = VividZooPipeline.from_files(args.mvdream, args.motion, args.alignment, args.device, args.dtype, log)
    rig = args.cameras
    if rig is None and args.turn:
        rig = moving_orbit(args.views, args.frames, args.elevation, args.azimuth_start, turn=args.turn)
    log(f"device {pipeline.device}, {str(pipeline.dtype).replace('torch.', '')}, seed {seed}")
    written = []
    for index, prompt in enumerate(prompts):
        settings = GenerationSettings(
            prompt=prompt, negative=args.negative, views=args.views, frames=args.frames, width=args.size,
            height=args.size, steps=args.steps, cfg=args.cfg, elevation=args.elevation,
            azimuth_start=args.azimuth_start, seed=seed, beta_schedule=args.beta_schedule,
            context_frames=args.context_frames, context_overlap=args.context_overlap, fps=args.fps,
        )
        out = args.out if len(prompts) == 1 else args.out / f"{index:03d}_{_slug(prompt)}"
        with tqdm(total=settings.steps, desc=f"[{index + 1}/{len(prompts)}] {prompt[:40]}", unit="step") as bar:
            video = pipeline.generate(settings, rig, on_step=lambda step, total: bar.update(1))
        save_video_or_rescue(video, out)
        log(f"wrote {out}/grid.mp4, view_XX.mp4, grid.webp, frames/, cameras.json, transforms.json")
        written.append(out)
    return written


def run_demo(out: Path, log: Callable[[str], None] = print) -> Path:
    from .synthetic_weights import write_test_weights

    start = time.perf_counter()
    weights = write_test_weights(out / "weights")
    args = build_parser().parse_args([
        "generate", "--mvdream", str(weights.mvdream), "--motion", str(weights.motion["v2"]),
        "--alignment", str(weights.alignment), "--prompt", DEMO_PROMPT, "--views", "4", "--frames", "8",
        "--size", "64", "--steps", "10", "--seed", "0", "--device", "cpu", "--out", str(out),
    ])
    log("demo: random tiny weights in the real file formats (the video is noise, the pipeline is real)")
    run_generation(args, [DEMO_PROMPT], log)
    log(f"demo finished in {time.perf_counter() - start:.1f} s")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            check_generation_options(args)
            run_generation(args, [args.prompt] if args.prompt else read_prompts(args.prompts))
        elif args.command == "demo":
            run_demo(args.out)
        elif args.command == "inspect":
            return _inspect(args.path, args.json)
        elif args.command == "make-test-weights":
            from .synthetic_weights import install_comfyui_test_weights, write_test_weights

            if args.comfyui_models:
                install_comfyui_test_weights(args.comfyui_models, full_size=args.full_size, log=print)
            else:
                write_test_weights(args.directory, full_size=args.full_size, log=print)
        else:
            return args.handler(args)
    except VividZooError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def _inspect(path: Path, as_json: bool) -> int:
    from .checkpoints import inspect_checkpoint

    try:
        report = inspect_checkpoint(path)
    except VividZooError as error:
        if as_json:
            print(json.dumps({"file": str(path), "usable": False, "reason": str(error)}, indent=1))
        else:
            print(f"{path}: not usable: {error}")
        return 1
    report["usable"] = True
    if as_json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{path}: {report['description']}")
    for key, value in report.items():
        if key not in ("file", "description", "usable"):
            print(f"  {key}: {value:,}" if isinstance(value, int) and not isinstance(value, bool) else f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

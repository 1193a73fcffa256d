"""``vividzoo generate``: text to multi-view video from local checkpoint files."""

from __future__ import annotations

import argparse
from typing import Callable

from ..devices import DTYPE_CHOICES
from ..settings import (
    AZIMUTH_START, BETA_SCHEDULE, CFG, CONTEXT_FRAMES, CONTEXT_OVERLAP, ELEVATION, FPS, FRAMES, NEGATIVE, SEED, STEPS,
    TURN, VIEWS, WIDTH, GenerationSettings,
)
from .options import add_setting, camera_file, device, existing_file, output_dir

SIZE_HELP = "width and height in pixels, a multiple of 8 (the paper: 256)"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("generate", help="text to multi-view video from local checkpoint files")
    parser.add_argument("--mvdream", type=existing_file, required=True, help="MVDream checkpoint, e.g. sd-v1.5-4view.pt")
    parser.add_argument("--motion", type=existing_file, required=True,
                        help="AnimateDiff motion module, e.g. mm_sd_v15_v2.ckpt")
    parser.add_argument("--alignment", type=existing_file,
                        help="trained alignment layers (.safetensors); none: training-free")
    prompts = parser.add_mutually_exclusive_group(required=True)
    prompts.add_argument("--prompt", help="text prompt; MVDream prompts usually end with ', 3d asset'")
    prompts.add_argument("--prompts", type=existing_file, help="text file with one prompt per line (# comments allowed)")
    add_video_options(parser)
    add_setting(parser, NEGATIVE)
    for setting in (ELEVATION, AZIMUTH_START, TURN):
        add_setting(parser, setting)
    parser.add_argument("--cameras", type=camera_file, help="camera JSON or transforms.json instead of the orbit options")
    for setting in (BETA_SCHEDULE, CONTEXT_FRAMES, CONTEXT_OVERLAP, FPS):
        add_setting(parser, setting)
    add_device_options(parser)
    parser.add_argument("--out", type=output_dir, required=True, help="output folder")
    parser.set_defaults(handler=run)


def add_video_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The size of the video and how it is sampled: shared by ``generate`` and ``eval --prompts``."""
    add_setting(parser, VIEWS)
    add_setting(parser, FRAMES)
    add_setting(parser, WIDTH, "--size", SIZE_HELP)
    for setting in (STEPS, CFG, SEED):
        add_setting(parser, setting)


def add_device_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--device", type=device, default="auto", help="auto (CUDA when present), cuda, cuda:N or cpu")
    parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES,
                        help="compute precision (auto: fp16 on CUDA, fp32 on CPU)")


def settings_from(args: argparse.Namespace) -> GenerationSettings:
    """The settings the options describe (the prompt is set per video); an unset seed is drawn here, once."""
    optional = {name: getattr(args, name) for name in ("negative", "elevation", "azimuth_start", "turn", "beta_schedule",
                                                         "context_frames", "context_overlap", "fps") if hasattr(args, name)}
    return GenerationSettings(prompt="", views=args.views, frames=args.frames, width=args.size, height=args.size,
                              steps=args.steps, cfg=args.cfg, seed=args.seed, **optional)


def check_before_loading(args: argparse.Namespace, settings: GenerationSettings) -> None:
    """What no single option can check alone, before any weights load."""
    from ..devices import resolve_device, resolve_dtype
    from ..layout import VideoLayout

    if getattr(args, "cameras", None) is not None:
        args.cameras.for_layout(VideoLayout(settings.views, settings.frames))
    resolve_dtype(args.dtype, resolve_device(args.device))


def run(args: argparse.Namespace, log: Callable[[str], None] = print) -> int:
    from ..diffusers_host import quiet_diffusers
    from ..generation import generate_prompts
    from ..pipeline import VividZooPipeline
    from ..prompts import read_prompts

    settings = settings_from(args)
    check_before_loading(args, settings)
    prompts = [args.prompt] if args.prompt is not None else read_prompts(args.prompts)
    quiet_diffusers()
    pipeline = VividZooPipeline.from_files(args.mvdream, args.motion, args.alignment, args.device, args.dtype, log)
    log(f"device {pipeline.device}, {str(pipeline.dtype).replace('torch.', '')}, seed {settings.seed}")
    windows = pipeline.context_windows(settings)
    if len(windows) > 1:
        log(f"{settings.frames} frames: denoised in {len(windows)} sliding windows of {len(windows[0])} frames "
            f"(the motion module sees at most {pipeline.max_frames} at once)")
    generate_prompts(pipeline, prompts, settings, args.out, args.cameras, log)
    return 0

"""``vividzoo generate``: text to multi-view video from local checkpoint files.

Vivid-ZOO (MVDream + AnimateDiff motion modules + alignment), or with ``--animate3d`` Animate3D's trained
MV-VDM: MVDream makes the 4 condition views from the prompt, Animate3D animates them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..errors import VividZooError
from ..settings import (
    AZIMUTH_START,
    BETA_SCHEDULE,
    CFG,
    CONTEXT_FRAMES,
    CONTEXT_OVERLAP,
    ELEVATION,
    FPS,
    FRAMES,
    FREE_INIT_ITERATIONS,
    IP_SCALE,
    NEGATIVE,
    SEED,
    STEPS,
    TURN,
    VIEWS,
    WIDTH,
    GenerationSettings,
)
from .options import add_device_options, add_setting, camera_file, check_devices, existing_file, output_dir
from .reconstruct import add_reconstruction_options, check_generated, reconstruct_generated

SIZE_HELP = "width and height in pixels, a multiple of 8 (the paper: 256)"
# With --animate3d the views and their cameras are Animate3D's: these options would be ignored, so they are refused.
VIVIDZOO_ONLY = ("motion", "alignment", "cameras", "context_frames")
CAMERA_SETTINGS = (VIEWS, ELEVATION, AZIMUTH_START, TURN)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("generate", help="text to multi-view video from local checkpoint files")
    parser.add_argument(
        "--mvdream", type=existing_file, required=True, help="MVDream checkpoint, e.g. sd-v1.5-4view.pt"
    )
    parser.add_argument(
        "--motion",
        type=existing_file,
        help="AnimateDiff motion module, e.g. mm_sd_v15_v2.ckpt (Vivid-ZOO: needed without --animate3d)",
    )
    parser.add_argument("--alignment", type=existing_file,
                        help="trained alignment layers (.safetensors); none: training-free")
    add_prompt_options(parser)
    add_video_options(parser)
    add_setting(parser, NEGATIVE)
    for setting in (ELEVATION, AZIMUTH_START, TURN):
        add_setting(parser, setting)
    parser.add_argument(
        "--cameras", type=camera_file, help="camera JSON or transforms.json instead of the orbit options"
    )
    for setting in (BETA_SCHEDULE, CONTEXT_FRAMES, CONTEXT_OVERLAP, FPS):
        add_setting(parser, setting)
    animate3d = parser.add_argument_group(
        "Animate3D instead of Vivid-ZOO: MVDream makes the 4 condition views from the prompt, Animate3D animates them")
    add_animate3d_files(animate3d, required=False)
    add_animate3d_settings(animate3d)
    add_device_options(parser)
    parser.add_argument("--out", type=output_dir, required=True, help="output folder")
    add_reconstruction_options(parser)
    parser.set_defaults(handler=run)


def add_prompt_options(parser: argparse.ArgumentParser) -> None:
    prompts = parser.add_mutually_exclusive_group(required=True)
    prompts.add_argument("--prompt", help="text prompt; MVDream prompts usually end with ', 3d asset'")
    prompts.add_argument(
        "--prompts", type=existing_file, help="text file with one prompt per line (# comments allowed)"
    )


def add_video_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                      steps_default: int | None = None, animate3d: bool = False) -> None:
    """The size of the video and how it is sampled: shared by ``generate``, ``animate`` and ``eval --prompts``.

    ``animate3d``: Animate3D's own options (its views are fixed, frame 0 is the condition views)."""
    if animate3d:
        add_setting(
            parser, FRAMES, help="frames per view, frame 0 being the condition views (Animate3D: 16, at most 32)"
        )
    else:
        add_setting(parser, VIEWS)
        add_setting(parser, FRAMES)
    add_setting(parser, WIDTH, "--size", SIZE_HELP)
    add_setting(parser, STEPS, default=steps_default)
    for setting in (CFG, SEED):
        add_setting(parser, setting)


def add_animate3d_files(parser: argparse.ArgumentParser | argparse._ArgumentGroup, required: bool) -> None:
    parser.add_argument("--animate3d", type=existing_file, required=required, metavar="FILE",
                        help="Animate3D's trained model, animate3d_motion_modules.ckpt")
    parser.add_argument(
        "--clip-vision",
        type=existing_file,
        metavar="FILE",
        required=required,
        help="CLIP ViT-H/14 image encoder, e.g. CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors (Animate3D)",
    )
    parser.add_argument(
        "--ip-adapter",
        type=existing_file,
        metavar="FILE",
        help="ip-adapter_sd15.bin or .safetensors (Animate3D; not needed when its file holds the whole UNet)",
    )


def add_animate3d_settings(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    add_setting(parser, IP_SCALE)
    add_setting(parser, FREE_INIT_ITERATIONS)


def settings_from(args: argparse.Namespace) -> GenerationSettings:
    """The settings the options describe (the prompt is set per video); an unset seed is drawn here, once."""
    optional = {
        name: getattr(args, name)
        for name in (
            "negative",
            "elevation",
            "azimuth_start",
            "turn",
            "beta_schedule",
            "context_frames",
            "context_overlap",
            "fps",
        )
        if hasattr(args, name)
    }
    return GenerationSettings(prompt="", views=args.views, frames=args.frames, width=args.size, height=args.size,
                              steps=args.steps, cfg=args.cfg, seed=args.seed, **optional)


def animate3d_settings_from(args: argparse.Namespace):
    """Animate3D's settings from the options; an unset seed is drawn here, once."""
    from ..animate3d_pipeline import Animate3DSettings

    optional = {name: getattr(args, name) for name in ("negative", "fps") if hasattr(args, name)}
    return Animate3DSettings(prompt="", frames=args.frames, width=args.size, height=args.size, steps=args.steps,
                             cfg=args.cfg, seed=args.seed, free_init_iterations=args.free_init_iterations,
                             ip_scale=args.ip_scale, **optional)


def check_before_loading(args: argparse.Namespace) -> None:
    """What no single option can check alone, before any weights load."""
    from ..layout import VideoLayout

    if args.animate3d is not None:
        given = [f"--{name.replace('_', '-')}" for name in VIVIDZOO_ONLY if getattr(args, name) is not None]
        given += [s.option for s in CAMERA_SETTINGS if getattr(args, s.name) != s.default]
        if given:
            raise VividZooError(
                f"{', '.join(given)}: Vivid-ZOO options; with --animate3d the 4 views and their cameras "
                "are Animate3D's own (elevation 15, front/left/back/right). Leave them out"
            )
        if args.clip_vision is None:
            raise VividZooError("--animate3d needs --clip-vision FILE (the CLIP ViT-H/14 image encoder)")
        animate3d_settings_from(args).check()
    else:
        given = [option for option, value in (("--clip-vision", args.clip_vision), ("--ip-adapter", args.ip_adapter))
                 if value is not None]
        given += [s.option for s in (IP_SCALE, FREE_INIT_ITERATIONS) if getattr(args, s.name) != s.default]
        if given:
            raise VividZooError(f"{', '.join(given)}: Animate3D options; add --animate3d FILE, or leave them out")
        if args.motion is None:
            raise VividZooError("give --motion FILE (an AnimateDiff motion module, e.g. mm_sd_v15_v2.ckpt) for "
                                "Vivid-ZOO, or --animate3d FILE for Animate3D")
        if args.cameras is not None:
            args.cameras.for_layout(VideoLayout(args.views, args.frames))
        settings_from(args).check()
    check_devices(args)


def run(args: argparse.Namespace, log: Callable[[str], None] = print) -> int:
    from ..diffusers_host import quiet_diffusers
    from ..generation import generate_prompts
    from ..pipeline import VividZooPipeline
    from ..prompts import read_prompts

    check_before_loading(args)
    prompts = [args.prompt] if args.prompt is not None else read_prompts(args.prompts)
    check_reconstruction(args, prompts)
    quiet_diffusers()
    if args.animate3d is not None:
        generator, settings = text_to_animate3d(args, log), animate3d_settings_from(args)
        log(f"device {generator.pipeline.device}, seed {settings.seed}; "
            "MVDream makes the 4 views, Animate3D animates them")
        reconstruct_generated(args, generate_prompts(generator, prompts, settings, args.out, log=log), log)
        return 0
    settings = settings_from(args)
    pipeline = VividZooPipeline.from_files(args.mvdream, args.motion, args.alignment, args.device, args.dtype, log)
    log(f"device {pipeline.device}, {str(pipeline.dtype).replace('torch.', '')}, seed {settings.seed}")
    windows = pipeline.context_windows(settings)
    if len(windows) > 1:
        log(f"{settings.frames} frames: denoised in {len(windows)} sliding windows of {len(windows[0])} frames "
            f"(the motion module sees at most {pipeline.max_frames} at once)")
    reconstruct_generated(args, generate_prompts(pipeline, prompts, settings, args.out, args.cameras, log), log)
    return 0


def check_reconstruction(args: argparse.Namespace, prompts: list[str]) -> None:
    """``--reconstruct``: the videos to be made fit the reconstruction model; checked before any weights load."""
    from ..animate3d_pipeline import VIEWS, condition_cameras
    from ..generation import prompt_folder

    folders = [prompt_folder(args.out, index, prompt, len(prompts)) for index, prompt in enumerate(prompts)]
    if args.animate3d is not None:
        check_generated(args, folders, VIEWS, condition_cameras())
    else:
        check_generated(args, folders, args.views, args.cameras or settings_from(args).cameras())


def text_to_animate3d(args: argparse.Namespace, log: Callable[[str], None] = print):
    """MVDream alone (for the views) and Animate3D, from the files the options name."""
    from ..animate3d_pipeline import Animate3DPipeline, MVDreamViewsThenAnimate3D
    from ..pipeline import VividZooPipeline

    views = VividZooPipeline.from_files(args.mvdream, None, None, args.device, args.dtype, log)
    animate = Animate3DPipeline.from_files(args.mvdream, args.animate3d, args.clip_vision, args.ip_adapter,
                                           args.device, args.dtype)
    return MVDreamViewsThenAnimate3D(views, animate)

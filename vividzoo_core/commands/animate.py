"""``vividzoo animate``: a static object (4 views, or a 3D asset rendered into them) + a prompt -> a 4-view video,
with Animate3D's trained MV-VDM."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..errors import VividZooError
from ..settings import FPS, NEGATIVE
from .generate import (
    add_animate3d_files,
    add_animate3d_settings,
    add_prompt_options,
    add_video_options,
    animate3d_settings_from,
)
from .options import add_device_options, add_setting, asset_file, check_devices, existing_file, output_dir
from .reconstruct import add_reconstruction_options, check_generated, reconstruct_generated

VIEW_NAMES = ("FRONT", "LEFT", "BACK", "RIGHT")


def register(commands: argparse._SubParsersAction) -> None:
    from ..animate3d_pipeline import STEPS

    parser = commands.add_parser(
        "animate", help="animate a static object with Animate3D: its 4 views (images or a 3D asset) + a prompt")
    parser.add_argument("--mvdream", type=existing_file, required=True,
                        help="MVDream checkpoint, sd-v1.5-4view.pt (its VAE, text encoder and UNet)")
    add_animate3d_files(parser, required=True)
    views = parser.add_mutually_exclusive_group(required=True)
    views.add_argument("--images", nargs=4, type=existing_file, metavar=VIEW_NAMES,
                       help="the object's 4 views at elevation 15 degrees: front, left, back, right (Animate3D's "
                            "0.png to 3.png), one size, square")
    views.add_argument("--asset", type=asset_file, metavar="FILE",
                       help="a static 3D asset (.glb .gltf .fbx .blend): Blender renders its 4 views as Animate3D does")
    add_prompt_options(parser)
    add_video_options(parser, steps_default=STEPS, animate3d=True)
    add_animate3d_settings(parser)
    add_setting(parser, NEGATIVE)
    add_setting(parser, FPS)
    add_device_options(parser)
    parser.add_argument("--out", type=output_dir, required=True, help="output folder")
    add_reconstruction_options(parser)
    parser.set_defaults(handler=run)


def condition_views(args: argparse.Namespace, log: Callable[[str], None] = print):
    """The 4 views as ``(4, H, W, 3)`` floats: read and checked, or rendered from the asset (before any weights)."""
    from PIL import Image, UnidentifiedImageError

    from ..animate3d_pipeline import check_condition_images

    if args.asset is not None:
        from ..data.render.condition_views import render_condition_views

        log(f"rendering the 4 condition views of {args.asset.name} with Blender")
        rendered = render_condition_views(args.asset)
        if rendered.note:
            log(f"note: {rendered.note}")
        return check_condition_images(rendered.images, what=str(args.asset))
    images = []
    for path in args.images:
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        except (UnidentifiedImageError, OSError) as error:
            raise VividZooError(f"{path}: not an image this machine can read ({error})") from None
    return check_condition_images(images, what="--images " + " ".join(path.name for path in args.images))


def run(args: argparse.Namespace, log: Callable[[str], None] = print) -> int:
    from ..animate3d_pipeline import VIEWS, Animate3DPipeline, Animate3DWithViews, condition_cameras, resize_for_latents
    from ..diffusers_host import quiet_diffusers
    from ..generation import generate_prompts, prompt_folder
    from ..prompts import read_prompts

    settings = animate3d_settings_from(args)
    settings.check()
    check_devices(args)
    prompts = [args.prompt] if args.prompt is not None else read_prompts(args.prompts)
    check_generated(args, [prompt_folder(args.out, i, prompt, len(prompts)) for i, prompt in enumerate(prompts)],
                    VIEWS, condition_cameras())
    views = condition_views(args, log)
    resize_for_latents(views, settings.width, settings.height)  # refuses another aspect ratio before any weights load
    quiet_diffusers()
    pipeline = Animate3DPipeline.from_files(args.mvdream, args.animate3d, args.clip_vision, args.ip_adapter,
                                            args.device, args.dtype)
    log(f"device {pipeline.device}, {str(pipeline.dtype).replace('torch.', '')}, seed {settings.seed}")
    folders = generate_prompts(Animate3DWithViews(pipeline, views), prompts, settings, args.out, log=log)
    reconstruct_generated(args, folders, log)
    return 0

"""``vividzoo reconstruct``: a multi-view video (a ``generate`` / ``animate`` output folder, or 4 view videos and a
cameras file) -> 3D Gaussians per frame (LGM) or over time (L4GM, optionally 3x the frames).

Also the ``--reconstruct`` options of ``generate`` and ``animate`` (:func:`add_reconstruction_options`), which
reconstruct each generated video into its ``reconstruction/`` folder.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ..errors import VividZooError
from ..settings import RECONSTRUCTION_SIZE
from .options import (
    add_device_options,
    add_setting,
    camera_file,
    check_devices,
    existing_dir,
    existing_file,
    output_dir,
)

VIEW_NAMES = ("VIEW0", "VIEW1", "VIEW2", "VIEW3")


def register(commands: argparse._SubParsersAction) -> None:
    from ..reconstruction_inputs import RECONSTRUCTION_FOLDER

    parser = commands.add_parser(
        "reconstruct", help="multi-view video -> 3D Gaussians per frame (LGM) or over time (L4GM), as PLY files")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("run_dir", nargs="?", type=existing_dir,
                        help="an output folder of `vividzoo generate` or `animate` (or a folder of several)")
    source.add_argument("--videos", nargs=4, type=existing_file, metavar=VIEW_NAMES,
                        help="4 view videos at azimuth 0/90/180/270 in that order (with --cameras)")
    parser.add_argument("--cameras", type=camera_file,
                        help="camera JSON or transforms.json (default: the run folder's cameras.json)")
    add_model_files(parser, required=True)
    parser.add_argument("--out", type=output_dir,
                        help=f"output folder, new or empty (default: {RECONSTRUCTION_FOLDER}/ in each result folder)")
    add_device_options(parser)
    parser.set_defaults(handler=run)


def add_model_files(parser: argparse.ArgumentParser | argparse._ArgumentGroup, required: bool) -> None:
    """``--lgm FILE | --l4gm FILE [--interp FILE]``, ``--moving-views``, ``--no-score``, ``--no-preview``,
    ``--input-size``."""
    models = parser.add_mutually_exclusive_group(required=required)
    models.add_argument("--lgm", type=existing_file, metavar="FILE",
                        help="LGM: model_fp16_fixrot.safetensors (each frame on its own)")
    models.add_argument("--l4gm", type=existing_file, metavar="FILE",
                        help="L4GM: recon.safetensors (the frames together, temporally consistent)")
    parser.add_argument("--interp", type=existing_file, metavar="FILE",
                        help="L4GM's interpolation model, interp.safetensors: 3x the frames (with --l4gm)")
    parser.add_argument("--moving-views", action="store_true",
                        help="L4GM: feed all 4 views of every frame (outside its training distribution) instead of "
                             "view 0 of every frame and views 1-3 of frame 0")
    parser.add_argument("--no-score", dest="score", action="store_false",
                        help="skip the reconstruction score (renders at the input cameras; slow on the CPU)")
    parser.add_argument("--no-preview", dest="preview", action="store_false",
                        help="skip the turntable video (rendered; slow on the CPU)")
    add_setting(parser, RECONSTRUCTION_SIZE)


def add_reconstruction_options(parser: argparse.ArgumentParser) -> None:
    """``--reconstruct`` and its model files, for ``generate`` and ``animate``."""
    group = parser.add_argument_group(
        "3D Gaussians from the video (into reconstruction/ beside it): --reconstruct with --lgm or --l4gm")
    group.add_argument("--reconstruct", action="store_true",
                       help="reconstruct each video as 3D Gaussians per frame (see `vividzoo reconstruct`)")
    add_model_files(group, required=False)


def model_kind(args: argparse.Namespace) -> tuple[str, Path]:
    from ..checkpoints.reconstruction import L4GM, LGM

    return (LGM, args.lgm) if args.lgm is not None else (L4GM, args.l4gm)


def check_model_options(args: argparse.Namespace, needs_flag: bool = False) -> None:
    """What the model options cannot check alone (``needs_flag``: generate / animate, where --reconstruct asks)."""
    model_given = args.lgm is not None or args.l4gm is not None
    extras = [option for option, value in (("--interp", args.interp), ("--moving-views", args.moving_views),
                                           ("--no-score", not args.score), ("--no-preview", not args.preview),
                                           ("--input-size", args.input_size != RECONSTRUCTION_SIZE.default)) if value]
    if needs_flag and not args.reconstruct:
        given = (["--lgm"] if args.lgm else []) + (["--l4gm"] if args.l4gm else []) + extras
        if given:
            raise VividZooError(f"{', '.join(given)}: reconstruction options; add --reconstruct, or leave them out")
        return
    if not model_given:
        raise VividZooError("--reconstruct needs --lgm FILE (LGM) or --l4gm FILE (L4GM)")
    if args.lgm is not None and (args.interp is not None or args.moving_views):
        given = [option for option in ("--interp", "--moving-views") if option in extras]
        raise VividZooError(f"{', '.join(given)}: L4GM options; use --l4gm FILE instead of --lgm, or leave them out")


def run(args: argparse.Namespace, log: Callable[[str], None] = print) -> int:
    from ..reconstruction_inputs import plan_jobs

    check_model_options(args)
    check_devices(args)
    jobs = plan_jobs(args.run_dir, args.videos, args.cameras, args.out, args.interp is not None, args.input_size,
                     log)
    reconstruct_jobs(args, jobs, log)
    return 0


def check_generated(args: argparse.Namespace, folders: list[Path], views: int, cameras) -> None:
    """``generate`` / ``animate`` with ``--reconstruct``, before any weights load: the videos that will be made
    (``views`` x ``--frames`` x ``--size``, ``cameras``) fit the model, and no ``reconstruction/`` folder exists."""
    from ..reconstruction_inputs import RECONSTRUCTION_FOLDER, check_cameras, check_output, check_shape

    check_model_options(args, needs_flag=True)
    if not args.reconstruct:
        return
    interpolate = args.interp is not None
    check_shape("--reconstruct", args.frames, views, args.size, args.size, interpolate, args.input_size)
    check_cameras("--reconstruct", cameras, args.frames, interpolate)
    for folder in folders:
        check_output(folder / RECONSTRUCTION_FOLDER)


def reconstruct_generated(args: argparse.Namespace, folders: list[Path], log: Callable[[str], None]) -> None:
    """Reconstructs each written video folder into its ``reconstruction/`` (``--reconstruct``)."""
    from ..reconstruction_inputs import plan_jobs

    if args.reconstruct:
        jobs = [job for folder in folders for job in plan_jobs(folder, interpolate=args.interp is not None,
                                                                 input_size=args.input_size, log=log)]
        reconstruct_jobs(args, jobs, log)


def reconstruct_jobs(args: argparse.Namespace, jobs: list, log: Callable[[str], None]) -> None:
    """Loads the model files (refused in one line if of another kind) and reconstructs every planned job."""
    from ..reconstruction_pipeline import ReconstructionPipeline, save_reconstruction, sequence_info

    kind, model = model_kind(args)
    pipeline = ReconstructionPipeline.from_files(kind, model, args.interp, args.device, args.dtype, args.input_size)
    log(f"{pipeline.description} on {pipeline.device}")
    for job in jobs:
        result = pipeline.reconstruct(job.video, args.moving_views, args.score)
        info = sequence_info(result, pipeline, job.video, args.moving_views)
        save_reconstruction(result, job.out, info, args.preview, args.input_size)
        score = f"; PSNR {result.score.mean_psnr:.2f} dB, SSIM {result.score.mean_ssim:.3f}" if result.score else ""
        log(f"wrote {job.out}/ ({len(result.gaussians)} PLY frames, gaussians.json"
            f"{', turntable.mp4' if args.preview else ''}, info.json){score}")

"""``vividzoo dataset ...``: check a dataset, make a toy one, render one from animated 3D assets."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli_options import (existing_file, existing_path, float_range, float_span, int_range, output_dir,
                           non_negative_int, positive_float, positive_int, shard)


def add_dataset_commands(commands: argparse._SubParsersAction) -> None:
    dataset = commands.add_parser("dataset", help="check a training dataset, or make a toy one")
    actions = dataset.add_subparsers(dest="dataset_command", required=True)
    check = actions.add_parser("check", help="report every problem of a dataset before training")
    check.add_argument("directory", type=Path)
    check.add_argument("--views", type=int, default=4, help="views per training sample (default 4, orthogonal)")
    check.add_argument("--frames", type=int, default=16, help="frames per training sample (default 16)")
    check.add_argument("--stride", type=int, default=3, help="frame stride of a training sample (default 3)")
    check.add_argument("--quick", action="store_true", help="do not decode every image")
    check.set_defaults(handler=_check)
    toy = actions.add_parser("make-toy", help="a small synthetic dataset of moving shapes with exact camera poses")
    toy.add_argument("directory", type=Path)
    toy.add_argument("--objects", type=int, default=6)
    toy.add_argument("--views", type=int, default=8, help="azimuths rendered (a multiple of 4 gives orthogonal views)")
    toy.add_argument("--frames", type=int, default=48, help="frames per view (48 allows 16 frames at stride 3)")
    toy.add_argument("--size", type=int, default=64, help="image size in pixels")
    toy.add_argument("--seed", type=int, default=0)
    toy.set_defaults(handler=_make_toy)
    _add_render_command(actions)


def _add_render_command(actions: argparse._SubParsersAction) -> None:
    from .render.settings import DEVICES, ENGINES, RenderSettings

    default = RenderSettings()
    render = actions.add_parser("render", help="render animated 3D assets (.glb .gltf .fbx .blend) with Blender")
    render.add_argument("assets", nargs="+", type=existing_path, help="asset files or folders of them")
    render.add_argument("--out", type=output_dir, required=True, help="dataset folder to write")
    render.add_argument("--captions", type=existing_file, help="CSV of uid,caption or JSON {uid: caption}; uid = file stem")
    render.add_argument("--views", type=positive_int, default=default.views, help="azimuths per object (default 24)")
    render.add_argument("--elevation", type=float_span(-89.0, 89.0), default=default.elevation,
                        help="degrees, fixed (20) or drawn per object from a range (default 15:30)")
    render.add_argument("--fps", type=positive_int, default=default.fps, help="frames per second sampled (default 24)")
    render.add_argument("--max-frames", type=positive_int, default=default.max_frames,
                        help="frames per object; longer animations keep their beginning (default 48)")
    render.add_argument("--resolution", type=int_range(16, 4096), default=default.resolution, help="pixels (default 512)")
    render.add_argument("--engine", choices=ENGINES, default=default.engine)
    render.add_argument("--device", choices=DEVICES, default=default.device, help="gpu: OptiX, CUDA, HIP, oneAPI or Metal")
    render.add_argument("--samples", type=positive_int, default=default.samples, help="samples per pixel (default 64)")
    render.add_argument("--no-denoise", dest="denoise", action="store_false", help="turn Cycles' denoiser off")
    render.add_argument("--radius", type=positive_float, default=default.radius, help="camera distance (default 2.4)")
    render.add_argument("--fov", type=float_range(1.0, 120.0), default=default.fov_degrees,
                        help="field of view in degrees (default 40)")
    render.add_argument("--seed", type=non_negative_int, default=default.seed, help="draws of elevation and azimuth start, render noise")
    render.add_argument("--shard", type=shard, default=(0, 1), help="I/N: render part I (0..N-1) of N, e.g. per job-array task")
    render.add_argument("--workers", type=positive_int, default=1, help="assets rendered at once (default 1)")
    render.add_argument("--timeout", type=positive_float, default=3600.0, help="seconds per asset (default 3600)")
    render.set_defaults(handler=_render)


def _check(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .reader import scan_dataset

    frames_needed = (args.frames - 1) * args.stride + 1
    with tqdm(unit="image", desc="decoding", disable=args.quick) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = scan_dataset(args.directory, args.views, frames_needed, not args.quick, progress)
    print(report.summary())
    return 1 if report.problems else 0


def _make_toy(args: argparse.Namespace) -> int:
    from .toy import make_toy_dataset

    folders = make_toy_dataset(args.directory, args.objects, args.views, args.frames, args.size, seed=args.seed)
    print(f"wrote {len(folders)} objects ({args.views} views x {args.frames} frames, {args.size} px) to {args.directory}")
    return 0


def _render(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .render.batch import BatchSummary, Shard, find_assets, load_captions, render_assets, require_bpy
    from .render.settings import RenderSettings

    require_bpy()
    settings = RenderSettings(args.views, args.elevation, args.fps, args.max_frames, args.resolution, args.engine,
                              args.device, args.samples, args.denoise, args.radius, args.fov, args.seed)
    part = Shard(*args.shard)
    assets = find_assets(args.assets)
    captions = load_captions(args.captions) if args.captions else {}
    args.out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(part.select(assets)), unit="asset", desc=f"rendering shard {part}") as bar:
        def progress(summary: BatchSummary) -> None:
            bar.n = len(summary.skipped) + summary.attempted
            bar.set_postfix(images_per_s=f"{summary.images / max(summary.seconds, 1e-9):.2f}", failed=len(summary.failed))

        summary = render_assets(assets, args.out, settings, captions, part, args.workers, args.timeout, progress)
    print(summary.line())
    return 0

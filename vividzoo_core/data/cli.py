"""``vividzoo dataset ...``: check a dataset, make a toy one."""

from __future__ import annotations

import argparse

from ..cli_options import existing_dir, int_range, output_dir, positive_int, seed


def add_dataset_commands(commands: argparse._SubParsersAction) -> None:
    dataset = commands.add_parser("dataset", help="check a training dataset, or make a toy one")
    actions = dataset.add_subparsers(dest="dataset_command", required=True)
    check = actions.add_parser("check", help="report every problem of a dataset before training")
    check.add_argument("directory", type=existing_dir)
    check.add_argument("--views", type=positive_int, default=4, help="views per training sample (default 4, orthogonal)")
    check.add_argument("--frames", type=positive_int, default=16, help="frames per training sample (default 16)")
    check.add_argument("--stride", type=positive_int, default=3, help="frame stride of a training sample (default 3)")
    check.add_argument("--quick", action="store_true", help="do not decode every image")
    check.set_defaults(handler=_check)
    toy = actions.add_parser("make-toy", help="a small synthetic dataset of moving shapes with exact camera poses")
    toy.add_argument("directory", type=output_dir)
    toy.add_argument("--objects", type=positive_int, default=6)
    toy.add_argument("--views", type=positive_int, default=8, help="azimuths rendered (a multiple of 4 gives orthogonal views)")
    toy.add_argument("--frames", type=positive_int, default=48, help="frames per view (48 allows 16 frames at stride 3)")
    toy.add_argument("--size", type=int_range(8, multiple=8), default=64, help="image size in pixels")
    toy.add_argument("--seed", type=seed, default=0)
    toy.set_defaults(handler=_make_toy)


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

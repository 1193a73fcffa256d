"""What the training benches share: the shape options, a trainer on random weights, alternating timings."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from vividzoo_core.synthetic_weights import RandomWeights
from vividzoo_core.training.config import config_from_dict
from vividzoo_core.training.trainer import Trainer


def parse_shape(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--precision", default="no", choices=("no", "fp16", "bf16"))
    return parser.parse_args()


def trainer(files: RandomWeights, data: Path, output: Path, args: argparse.Namespace, **changes) -> Trainer:
    return Trainer(config_from_dict({
        "mvdream": str(files.mvdream), "motion_module": str(files.motion["v2"]), "data": str(data),
        "output_dir": str(output), "batch_size": args.batch, "views": args.views, "frames": args.frames,
        "frame_stride": 1, "image_size": args.size, "mixed_precision": args.precision, "num_workers": 0,
        **changes}), log=lambda message: None)


def alternating_medians(
    steps: int, runs: dict[str, Callable[[int], None]]
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per step of each run (after one warm-up step), runs taking turns; and peak GPU GB."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    peaks: dict[str, float] = {}
    for step in range(steps + 1):
        for name, run in runs.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            run(step)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
                peaks[name] = torch.cuda.max_memory_allocated() / 1024**3
            if step:  # the first step warms up
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}, peaks


def describe(args: argparse.Namespace) -> str:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return (f"{'full-size' if args.full_size else 'tiny'} network, {args.views} views x {args.frames} frames x "
            f"{args.size} px, batch {args.batch}, {device}, precision {args.precision}, median of {args.steps}")

"""Training-step cost: samples/s and peak memory (GPU), and gradient checkpointing's time ratio.

Runs the real trainer (random weights in the real formats, a toy dataset) for a few steps with and
without gradient checkpointing, alternating, in one run. On a CPU read the ratio; on a GPU also the
absolute samples/s and peak memory. The paper's shape is 4 views x 16 frames x 256 px, batch 16
(``--full-size --size 256 --frames 16 --batch 1`` per GPU; tiny widths by default).

    python bench/train_step.py [--full-size] [--views 4 --frames 16 --size 256 --batch 1] [--steps 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vividzoo_core.diffusers_host import quiet_diffusers
from vividzoo_core.synthetic_weights import write_test_weights
from vividzoo_core.training.config import config_from_dict
from vividzoo_core.data.toy import make_toy_dataset
from vividzoo_core.training.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--precision", default="no", choices=("no", "fp16", "bf16"))
    args = parser.parse_args()
    quiet_diffusers()
    folder = Path(tempfile.mkdtemp())
    files = write_test_weights(folder / "weights", full_size=args.full_size)
    make_toy_dataset(folder / "data", objects=max(2, args.batch), views=4, frames=args.frames, size=args.size)

    def trainer(checkpointing: bool) -> Trainer:
        return Trainer(config_from_dict({
            "mvdream": str(files.mvdream), "motion_module": str(files.motion["v2"]), "data": str(folder / "data"),
            "output_dir": str(folder / "out"), "batch_size": args.batch, "views": args.views, "frames": args.frames,
            "frame_stride": 1, "image_size": args.size, "mixed_precision": args.precision, "num_workers": 0,
            "gradient_checkpointing": checkpointing}), log=lambda m: None)

    results = {}
    trainers = {name: trainer(name == "checkpointing") for name in ("checkpointing", "plain")}
    batches = {name: next(iter(t.data_loader())) for name, t in trainers.items()}
    times = {name: [] for name in trainers}
    peaks = {}
    for step in range(args.steps + 1):
        for name, t in trainers.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            t.train_step(batches[name], step)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
                peaks[name] = torch.cuda.max_memory_allocated() / 1024**3
            if step:  # the first step warms up
                times[name].append(time.perf_counter() - start)
    for name in trainers:
        results[name] = statistics.median(times[name])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"{'full-size' if args.full_size else 'tiny'} network, {args.views} views x {args.frames} frames x "
          f"{args.size} px, batch {args.batch}, {device}, precision {args.precision}, median of {args.steps}")
    for name, seconds in results.items():
        memory = f", peak {peaks[name]:.1f} GB" if name in peaks else ""
        print(f"  {name:14s} {seconds:.3f} s/step, {args.batch / seconds:.2f} samples/s{memory}")
    print(f"  with / without gradient checkpointing = {results['checkpointing'] / results['plain']:.2f}")


if __name__ == "__main__":
    main()

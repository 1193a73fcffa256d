"""Training-step cost: samples/s and peak memory (GPU), and gradient checkpointing's time ratio.

Runs the real trainer (random weights in the real formats, a toy dataset) for a few steps with and
without gradient checkpointing, alternating, in one run. On a CPU read the ratio; on a GPU also the
absolute samples/s and peak memory. The paper's shape is 4 views x 16 frames x 256 px, batch 16
(``--full-size --size 256 --frames 16 --batch 1`` per GPU; tiny widths by default).

    python bench/train_step.py [--full-size] [--views 4 --frames 16 --size 256 --batch 1] [--steps 3]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from training_bench import alternating_medians, describe, parse_shape, trainer

from vividzoo_core.data.toy import make_toy_dataset
from vividzoo_core.diffusers_host import quiet_diffusers
from vividzoo_core.synthetic_weights import write_test_weights


def main() -> None:
    args = parse_shape(__doc__)
    quiet_diffusers()
    folder = Path(tempfile.mkdtemp())
    files = write_test_weights(folder / "weights", full_size=args.full_size)
    make_toy_dataset(folder / "data", objects=max(2, args.batch), views=4, frames=args.frames, size=args.size)
    trainers = {
        name: trainer(files, folder / "data", folder / "out", args, gradient_checkpointing=name == "checkpointing")
        for name in ("checkpointing", "plain")
    }
    batches = {name: next(iter(t.data_loader())) for name, t in trainers.items()}
    results, peaks = alternating_medians(args.steps, {
        name: (lambda step, t=t, name=name: t.train_step(batches[name], step)) for name, t in trainers.items()})
    print(describe(args))
    for name, seconds in results.items():
        memory = f", peak {peaks[name]:.1f} GB" if name in peaks else ""
        print(f"  {name:14s} {seconds:.3f} s/step, {args.batch / seconds:.2f} samples/s{memory}")
    print(f"  with / without gradient checkpointing = {results['checkpointing'] / results['plain']:.2f}")


if __name__ == "__main__":
    main()

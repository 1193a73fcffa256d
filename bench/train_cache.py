"""Training-step time with and without the latent cache, as a ratio measured in one run.

Each step loads a batch (num_workers 0, so loading counts) and takes one optimiser step, through the
real trainer: once from images (VAE and text encoder every step), once from a latent cache
(``vividzoo dataset encode``) of the same dataset. Steps alternate between the two, so machine noise
falls on both. Random weights in the real formats (tiny widths by default; ``--full-size`` for the
real widths, which is where the ratio means something: the VAE encoder is then a real share of a
step). On a CPU read only the ratio.

    python bench/train_cache.py [--full-size] [--views 4 --frames 16 --size 256 --batch 1] [--steps 3]
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from training_bench import alternating_medians, describe, parse_shape, trainer

from vividzoo_core.data.latents import LatentEncoder, encode_dataset
from vividzoo_core.data.reader import scan_dataset
from vividzoo_core.data.toy import make_toy_dataset
from vividzoo_core.devices import resolve_device
from vividzoo_core.diffusers_host import quiet_diffusers
from vividzoo_core.synthetic_weights import write_test_weights


def main() -> None:
    args = parse_shape(__doc__)
    quiet_diffusers()
    folder = Path(tempfile.mkdtemp())
    files = write_test_weights(folder / "weights", full_size=args.full_size)
    make_toy_dataset(folder / "images", objects=max(2, args.batch), views=4, frames=args.frames, size=args.size)
    shutil.copytree(folder / "images", folder / "cached")
    objects = scan_dataset(folder / "cached", args.views, args.frames).objects
    encoder = LatentEncoder(files.mvdream, args.size, resolve_device("auto"))
    started = time.perf_counter()
    encode_dataset(objects, encoder)
    encode_seconds = time.perf_counter() - started
    del encoder
    trainers = {name: trainer(files, folder / name, folder / f"out_{name}", args) for name in ("images", "cached")}
    assert trainers["cached"].cached and not trainers["images"].cached
    loaders = {name: iter(t.data_loader()) for name, t in trainers.items()}
    results, _ = alternating_medians(args.steps, {
        name: (lambda step, t=t, name=name: t.train_step(next(loaders[name]), step)) for name, t in trainers.items()})
    print(describe(args))
    for name, seconds in results.items():
        print(f"  {name:8s} {seconds:.3f} s/step (batch loading included)")
    print(
        f"  encoding the cache once: {encode_seconds:.1f} s for {len(objects)} objects of 4 views x "
        f"{args.frames} frames"
    )
    print(f"  with / without the latent cache = {results['cached'] / results['images']:.2f}")


if __name__ == "__main__":
    main()

"""How long training takes to start on a dataset of MV-Video's size: reading the dataset, then the first batch.

Builds a tree of ``--objects`` object folders (default 53,000, MV-Video's count) whose files are
symbolic links to ``--reference`` real toy objects of 16 mp4 views x 48 frames, as
``dataset from-mv-video`` makes them (``caption.txt``, ``cameras.json`` and ``views/NNN.mp4`` are
links; the folders are real). Then it times what the trainer runs before its first step
(``vividzoo_core.training.trainer.training_dataset``, then the first batch of a data loader):

- without a manifest: every object read from its files (video headers, counts, cameras; no frame
  decoded), as when ``dataset check`` was never run; its record is then saved as the manifest, as
  ``dataset check --quick`` does (a full check also decodes every frame, once);
- with the manifest: as after ``dataset check``;

and, for the start before issue 15, which also decoded every frame of every object: that decoding
on ``--decode-sample`` objects, scaled to the tree. The tree's few real files stay in the page cache,
so every time here is what a warm disk gives; a cold network disk adds its latency per file opened
(none with the manifest, 17 per object without). Peak memory is the process's maximum resident size.

    python bench/train_startup.py [--objects 53000] [--reference 8] [--decode-sample 200] [--batch 2] [--folder DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import av
import torch

from vividzoo_core.cameras import CAMERAS_FILE
from vividzoo_core.data.format import CAPTION_FILE, VIEWS_FOLDER
from vividzoo_core.data.manifest import MANIFEST_FILE
from vividzoo_core.data.reader import scan_dataset
from vividzoo_core.data.toy import make_toy_dataset
from vividzoo_core.training.config import config_from_dict
from vividzoo_core.training.sampler import EpochSampler
from vividzoo_core.training.trainer import training_dataset

VIEWS, FRAMES = 16, 48


def link_tree(references: list[Path], tree: Path, objects: int) -> None:
    """``objects`` folders of links, object ``i`` to reference ``i % len(references)``."""
    tree.mkdir(parents=True)
    for index in range(objects):
        source = references[index % len(references)]
        folder = tree / f"{index:06d}-00"
        (folder / VIEWS_FOLDER).mkdir(parents=True)
        for name in (CAPTION_FILE, CAMERAS_FILE):
            os.symlink(source / name, folder / name)
        for view in sorted((source / VIEWS_FOLDER).iterdir()):
            os.symlink(view, folder / VIEWS_FOLDER / view.name)


class Opened:
    """Counts the video containers opened."""

    def __init__(self) -> None:
        self.count, self.open = 0, av.open
        av.open = self

    def __call__(self, *args, **kwargs):
        self.count += 1
        return self.open(*args, **kwargs)


def start(settings: dict, batch: int, opened: Opened) -> str:
    """What the trainer does before its first step, timed: the dataset, then the first batch."""
    opened.count, lines = 0, []
    began = time.perf_counter()
    dataset = training_dataset(config_from_dict(dict(settings)), log=lines.append)
    read, opened_to_read = time.perf_counter() - began, opened.count
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=EpochSampler(len(dataset), seed=0))
    next(iter(loader))
    total = time.perf_counter() - began
    where = next(line for line in lines if "recorded them" in line)
    return (f"{where}; {opened_to_read} videos opened to read it: dataset {read:.1f} s, "
            f"+ first batch ({batch} samples) = {total:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=53_000)
    parser.add_argument("--reference", type=int, default=8, help="real objects the links point to")
    parser.add_argument("--decode-sample", type=int, default=200, help="objects decoded to estimate the old start")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--folder", type=Path, help="where to build the tree (default: a temporary folder, removed)")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp())
    began = time.perf_counter()
    references = make_toy_dataset(folder / "reference", objects=args.reference, views=VIEWS, frames=FRAMES, size=32,
                                  videos=True)
    made = time.perf_counter() - began
    began = time.perf_counter()
    link_tree(references, folder / "tree", args.objects)
    linked = time.perf_counter() - began
    print(f"{args.objects} objects of {VIEWS} mp4 views x {FRAMES} frames: links to {args.reference} real ones "
          f"(made in {made:.0f} s, linked in {linked:.0f} s)")
    (folder / "mvdream.pt").touch()  # only its name and size are read before the models load
    settings = {"mvdream": str(folder / "mvdream.pt"), "motion_module": "unused", "data": str(folder / "tree"),
                "output_dir": str(folder / "run"), "image_size": 32, "batch_size": args.batch}
    opened = Opened()

    print(f"  without a manifest: {start(settings, args.batch, opened)}")
    began = time.perf_counter()
    report = scan_dataset(folder / "tree", 4, 46, decode_images=False)
    report.save_manifest()
    print(f"  writing the manifest as `dataset check --quick` does: {time.perf_counter() - began:.1f} s, "
          f"{(folder / 'tree' / MANIFEST_FILE).stat().st_size / 1e6:.1f} MB")
    print(f"  with the manifest: {start(settings, args.batch, opened)}")

    sample = min(args.decode_sample, args.objects)
    link_tree(references, folder / "sample", sample)
    began = time.perf_counter()
    scan_dataset(folder / "sample", 4, 46, decode_images=True)
    decoding = (time.perf_counter() - began) * args.objects / sample
    print(f"  before issue 15 (every frame decoded): about {decoding:.0f} s for the tree "
          f"(read and decoded {sample} objects, scaled by {args.objects / sample:.0f})")
    print(f"  peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
    if args.folder is None:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()

"""Where ``vividzoo dataset encode`` spends its time on one object, before and after issue 15, in one run.

Builds one object of ``--views`` x ``--frames`` mp4 views (moving synthetic pictures at ``--source`` px;
MV-Video has 16 x 48) and random weights in the real layout (tiny widths; ``--full-size`` for the real
ones), then times each stage per view, the two ways taking turns so that machine noise falls on both:

- decoding: one pass over the video (now) / one read per chunk of ``--chunk`` frames (before: each
  read re-opened the video and decoded from its keyframe up to the chunk's end);
- preparing (white behind transparency, resize, centre crop, to [-1, 1]): batched, opaque frames
  without a composite, into channels-last memory (now) / per image through RGBA, stacked into a
  contiguous batch (before);
- the VAE posterior of each chunk: channels-last VAE and pixels (now) / contiguous (before);

and last the whole ``LatentEncoder.encode`` of the object, as ``dataset encode`` runs it. Wall seconds
are medians over the views; CPU seconds (this process, all threads) are totals, the steadier measure
on a shared machine. The ratios are before / after.

    python bench/encode_time.py [--views 16 --frames 48 --source 512 --image-size 256 --chunk 16] [--full-size]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vividzoo_core.cameras import CAMERAS_FILE, orbit
from vividzoo_core.data.format import CAPTION_FILE, view_video
from vividzoo_core.data.frames import prepare_image, prepare_images
from vividzoo_core.data.latents import LatentEncoder
from vividzoo_core.data.reader import scan_dataset
from vividzoo_core.diffusers_host import quiet_diffusers
from vividzoo_core.pipeline import resolve_device
from vividzoo_core.synthetic_weights import write_test_weights
from vividzoo_core.video import write_mp4


def write_object(folder: Path, views: int, frames: int, size: int) -> None:
    yy, xx = np.mgrid[0:size, 0:size] / size
    for view in range(views):
        pictures = (np.stack([np.sin(6 * xx + 0.2 * f + view), np.cos(5 * yy - 0.1 * f), xx * yy], -1) * 0.5 + 0.5
                    for f in range(frames))
        path = view_video(folder, view)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mp4(path, (torch.from_numpy(p) for p in pictures), fps=24)
    (folder / CAPTION_FILE).write_text("a test pattern\n")
    orbit(views).save(folder / CAMERAS_FILE)


def timed(run: Callable[[], object]) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=16)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--source", type=int, default=512, help="pixels of the videos")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--full-size", action="store_true")
    args = parser.parse_args()
    quiet_diffusers()
    folder = Path(tempfile.mkdtemp())
    files = write_test_weights(folder / "weights", full_size=args.full_size)
    write_object(folder / "data" / "object", args.views, args.frames, args.source)
    video = scan_dataset(folder / "data", views=1, frames_needed=1, decode_images=False).objects[0]
    encoder = LatentEncoder(files.mvdream, args.image_size, resolve_device("auto"), args.chunk)
    contiguous_vae = copy.deepcopy(encoder.vae).to(memory_format=torch.contiguous_format)
    chunks = [range(start, min(start + args.chunk, args.frames)) for start in range(0, args.frames, args.chunk)]
    size, device = args.image_size, encoder.device

    stages = {
        "decode": {
            "before": lambda source: [image for chunk in chunks for image in source.read(chunk)],
            "after": lambda source: source.read(range(source.count)),
        },
        "prepare": {
            "before": lambda images: torch.stack([prepare_image(image.convert("RGBA"), size) for image in images]),
            "after": lambda images: prepare_images(images, size),
        },
        "vae": {
            "before": lambda pixels: [
                contiguous_vae.encode(pixels[c.start : c.stop].to(device)).latent_dist.mean for c in chunks
            ],
            "after": lambda pixels: [
                encoder.vae.encode(pixels[c.start : c.stop].to(device)).latent_dist.mean for c in chunks
            ],
        },
    }
    wall = {stage: {way: [] for way in ways} for stage, ways in stages.items()}
    cpu = {stage: {way: 0.0 for way in ways} for stage, ways in stages.items()}
    with torch.no_grad():
        for source in video.sources:
            carried = {"before": source, "after": source}  # each way's output feeds its own next stage
            for stage, ways in stages.items():
                for way in ("before", "after"):
                    seconds, cpu_seconds, carried[way] = timed(lambda run=ways[way], given=carried[way]: run(given))
                    wall[stage][way].append(seconds)
                    cpu[stage][way] += cpu_seconds
        whole_wall, whole_cpu, _ = timed(lambda: encoder.encode(video))

    network = "full-size" if args.full_size else "tiny"
    print(f"one object: {args.views} views x {args.frames} frames, {args.source} px mp4 -> {size} px, "
          f"{network} VAE on {device}, chunks of {args.chunk}")
    print(f"  {'stage':8s} {'before s/view':>14s} {'after s/view':>13s} {'ratio':>6s}   {'CPU s before':>12s} "
          f"{'after':>7s} {'ratio':>6s}")
    for stage in stages:
        before, after = statistics.median(wall[stage]["before"]), statistics.median(wall[stage]["after"])
        print(f"  {stage:8s} {before:14.3f} {after:13.3f} {before / after:6.2f}   {cpu[stage]['before']:12.1f} "
              f"{cpu[stage]['after']:7.1f} {cpu[stage]['before'] / cpu[stage]['after']:6.2f}")
    total = {way: sum(cpu[stage][way] for stage in stages) for way in ("before", "after")}
    print(f"  stages summed, CPU s: before {total['before']:.1f}, after {total['after']:.1f}, "
          f"ratio {total['before'] / total['after']:.2f}")
    shares = ", ".join(f"{stage} {cpu[stage]['after'] / total['after']:.0%}" for stage in stages)
    print(f"  the whole encode now: {whole_wall:.1f} s wall, {whole_cpu:.1f} s CPU; shares of the stages: {shares}")


if __name__ == "__main__":
    main()

"""Render rate of ``dataset render`` (Cycles) and what the paper's dataset would cost.

Renders a small animated asset (a 20k-triangle shaded sphere and two markers,
vividzoo_core.data.render.sample_asset --body) through the real batch (one worker process per asset)
twice per setting, with few and with more frames. The difference of the two wall times over the
difference of their image counts is the time per image; what is left is the per-asset cost (process
start, import, framing). Settings: 256 and 512 px at the CLI's default 64 samples with denoising,
and 16 px at 1 sample (more frames), whose time per image is the fixed cost of a render call (scene
sync, PNG write) that a GPU does not shorten. Besides wall time it reports the workers' CPU time per
image (user + system): on a shared machine, CPU time / cores is what an idle machine would take.

The paper's set: 14,271 objects x 24 views x 48 frames = 16,440,192 images. On one 8-GPU node
(one shard per GPU, ``CUDA_VISIBLE_DEVICES=i ... --shard i/8 --device gpu``) each image costs
``fixed + (cpu_time - fixed) / gpu_speedup``; ``--gpu-speedup`` is how much faster one GPU traces
than this whole machine. It cannot be measured without a GPU: the default (200) is an assumption
(Blender Open Data scores put datacentre and high-end GPUs with OptiX two to three orders of
magnitude above a two-core CPU share); run this bench with ``--device gpu`` on one GPU of the node
to replace the estimate by a measurement.

    python bench/render_rate.py [--device cpu|gpu] [--samples 64] [--gpu-speedup 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vividzoo_core.data.render.batch import render_assets
from vividzoo_core.data.render.settings import RenderSettings

PAPER_IMAGES = 14_271 * 24 * 48
GPUS = 8
VIEWS = 2


def seconds_for(asset: Path, out: Path, settings: RenderSettings) -> tuple[float, float, int]:
    """Wall seconds, worker CPU seconds and images of one batch."""
    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    started, cpu_started = time.perf_counter(), cpu()
    summary = render_assets([asset], out, settings)
    if summary.failed:
        raise SystemExit(f"render failed: {summary.failed[0]['reason']}")
    return time.perf_counter() - started, cpu() - cpu_started, summary.images


def measure(asset: Path, folder: Path, resolution: int, samples: int, denoise: bool, device: str,
            frame_counts: tuple[int, int]) -> tuple[float, float, float]:
    """(wall s per image, CPU s per image, wall s per asset) from two runs with different frame counts."""
    runs = []
    for frames in frame_counts:
        settings = RenderSettings(views=VIEWS, elevation=(20.0, 20.0), max_frames=frames, resolution=resolution,
                                  samples=samples, denoise=denoise, device=device)
        runs.append(seconds_for(asset, folder / f"{resolution}-{frames}", settings))
    (short, short_cpu, short_images), (long, long_cpu, long_images) = runs
    per_image = (long - short) / (long_images - short_images)
    return per_image, (long_cpu - short_cpu) / (long_images - short_images), short - short_images * per_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--samples", type=int, default=RenderSettings().samples)
    parser.add_argument("--gpu-speedup", type=float, default=200.0,
                        help="one GPU's tracing speed over this machine's (assumption unless measured)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        asset = folder / "bench.glb"
        subprocess.run([sys.executable, "-m", "vividzoo_core.data.render.sample_asset", str(asset), "--body",
                        "--frames", "24"], check=True, capture_output=True)
        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
        fixed, fixed_cpu, _ = measure(asset, folder, 16, 1, False, args.device, (1, 24))
        print(f"{args.device}: fixed cost of a render call (16 px, 1 sample): {fixed:.3f} s/image "
              f"({fixed_cpu:.3f} CPU s)")
        for resolution in (256, 512):
            per_image, cpu_per_image, per_asset = measure(asset, folder, resolution, args.samples, True, args.device,
                                                          (1, 3))
            print(f"{args.device}: {resolution} px, {args.samples} samples, denoised: {1 / per_image:.3f} images/s "
                  f"({per_image:.2f} s/image wall, {cpu_per_image:.2f} CPU s/image = "
                  f"{os.cpu_count() / cpu_per_image:.3f} images/s on these cores idle), "
                  f"{per_asset:.1f} s per asset (start, import, framing)")
            if args.device == "cpu":
                fixed = max(fixed, 0.0)  # a busy machine's noise can push the slope below zero
                gpu_image = fixed + max(per_image - fixed, 0.0) / args.gpu_speedup
            else:
                gpu_image = per_image
            node_days = (PAPER_IMAGES * gpu_image + 14_271 * per_asset) / GPUS / 86_400
            cpu_days = (PAPER_IMAGES * per_image + 14_271 * per_asset) / 86_400
            how = "measured on this GPU" if args.device == "gpu" else f"assumed GPU speedup {args.gpu_speedup:g}x"
            print(f"  paper set ({PAPER_IMAGES:,} images) at {resolution} px: {cpu_days:,.0f} days on this machine; "
                  f"one {GPUS}-GPU node ~{node_days:.1f} days ({how}: {gpu_image:.3f} s/image per GPU)")


if __name__ == "__main__":
    main()

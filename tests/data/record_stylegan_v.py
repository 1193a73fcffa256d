"""Records ``stylegan_v.npz``, the fixtures that pin our FVD conventions to StyleGAN-V's own code.

    python tests/data/record_stylegan_v.py --stylegan-v PATH/TO/stylegan-v

PATH is a checkout of github.com/universome/stylegan-v (kept outside this repository; StyleGAN-V is not
on PyPI). The script imports its code and records what that code computes:

- FVD: ``src/metrics/frechet_video_distance.py: compute_fvd`` with the real ``metric_utils.FeatureStats``
  and ``MetricOptions``; only the I3D pass (``compute_feature_stats_for_dataset``) is replaced by
  fixed random feature rows, appended in batches as the real loop does. Recorded per clip count: the
  mean and covariance of each side (``FeatureStats.get_mean_cov``) and the FVD ``compute_fvd`` returns.
- Reference frames: ``src/scripts/convert_videos_to_frames.py: process_video`` on small RGB frames of
  awkward sizes (odd crops, rounding at .5, upscaling, already the right size). moviepy's reader is
  replaced by one that yields those frames, and each frame is captured just before it is written as
  JPEG (the JPEG encoding itself is not part of the comparison).

Needs StyleGAN-V's Python dependencies for these modules (omegaconf, tqdm, requests, scipy, Pillow, torch)
and torchvision 0.8.2, the version its environment.yaml pins: its ``center_crop`` offset is
``int((excess + 1) * 0.5)``, while later torchvision versions round half to even.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

FEATURES = 16
CLIP_COUNTS = (8, 16, 17, 240)
"""Fewer, as many as, one more than, and many more than the feature dimensions."""
FRAME_CASES = (((47, 32), 16), ((32, 42), 16), ((16, 23), 16), ((12, 20), 16), ((40, 40), 16), ((72, 40), 32))
"""((width, height), target size) for the frame conversion."""


def feature_sets(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    generated = rng.normal(size=(max(CLIP_COUNTS), FEATURES)) @ rng.normal(size=(FEATURES, FEATURES)) + 0.3
    reference = rng.normal(size=(max(CLIP_COUNTS), FEATURES)) @ rng.normal(size=(FEATURES, FEATURES))
    return generated.astype(np.float32), reference.astype(np.float32)


def record_fvd(generated: np.ndarray, reference: np.ndarray) -> dict[str, np.ndarray]:
    from src import dnnlib
    from src.metrics import frechet_video_distance, metric_utils

    def feature_stats(rows: np.ndarray, count: int, batch_size: int = 64):
        stats = metric_utils.FeatureStats(capture_mean_cov=True, max_items=count)
        for batch in torch.from_numpy(rows[:count]).split(batch_size):
            stats.append_torch(batch)
        return stats

    def precomputed_stats(opts, detector_url, detector_kwargs, rel_lo=0, rel_hi=1, max_items=None,
                          capture_mean_cov=False, batch_size=64, **kwargs):
        assert capture_mean_cov
        # compute_fvd asks for the real side with rel_hi=0, for the generated one with rel_hi=1
        return feature_stats(reference if rel_hi == 0 else generated, max_items, batch_size)

    metric_utils.compute_feature_stats_for_dataset = precomputed_stats
    recorded = {}
    for count in CLIP_COUNTS:
        dataset = dnnlib.EasyDict(resolution=256)
        opts = metric_utils.MetricOptions(dataset_kwargs=dataset, gen_dataset_kwargs=dnnlib.EasyDict(dataset),
                                          generator_as_dataset=True, device=torch.device("cpu"), cache=False)
        recorded[f"fvd_{count}"] = np.float64(frechet_video_distance.compute_fvd(opts, max_real=count, num_gen=count,
                                                                                num_frames=16))
        for side, rows in (("generated", generated), ("reference", reference)):
            stats = feature_stats(rows, count)
            recorded[f"mean_{side}_{count}"], recorded[f"covariance_{side}_{count}"] = stats.get_mean_cov()
    return recorded


def textured_frame(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Smooth blobs plus fine noise: a one-pixel shift or a different scale changes many pixels."""
    coarse = Image.fromarray(rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)).resize((width, height),
                                                                                      Image.Resampling.BILINEAR)
    noise = rng.integers(-40, 41, size=(height, width, 3))
    return np.clip(np.asarray(coarse, dtype=np.int64) + noise, 0, 255).astype(np.uint8)


def record_frames(target: Path) -> dict[str, np.ndarray]:
    frames_by_clip: dict[str, np.ndarray] = {}

    class FrameClip:  # stands in for moviepy.editor.VideoFileClip: one clip of one frame
        fps = 1

        def __init__(self, path: str) -> None:
            self.frame = frames_by_clip[path]

        def iter_frames(self, fps: float):
            yield self.frame

    moviepy = types.ModuleType("moviepy")
    moviepy.editor = types.ModuleType("moviepy.editor")
    moviepy.editor.VideoFileClip = FrameClip
    sys.modules.update({"moviepy": moviepy, "moviepy.editor": moviepy.editor})
    from src.scripts.convert_videos_to_frames import process_video

    written: list[Image.Image] = []
    save = Image.Image.save

    def capture(image: Image.Image, path, *args, **kwargs) -> None:
        written.append(image.copy())
        save(image, path, *args, **kwargs)

    rng, recorded = np.random.default_rng(1), {}
    Image.Image.save = capture
    try:
        for index, ((width, height), size) in enumerate(FRAME_CASES):
            clip_path = str(target / f"clip_{index}.mp4")
            frames_by_clip[clip_path] = textured_frame(rng, width, height)
            process_video(clip_path, str(target / "frames"), target_size=size)
            recorded[f"frame_input_{index}"] = frames_by_clip[clip_path]
            recorded[f"frame_size_{index}"] = np.int64(size)
            recorded[f"frame_output_{index}"] = np.asarray(written.pop().convert("RGB"))
    finally:
        Image.Image.save = save
    return recorded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stylegan-v", type=Path, required=True, help="a checkout of universome/stylegan-v")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("stylegan_v.npz"))
    args = parser.parse_args()
    import torchvision

    if torchvision.__version__.split("+")[0] != "0.8.2":
        sys.exit(f"torchvision {torchvision.__version__} found; record with 0.8.2, StyleGAN-V's pinned version "
                 "(its centre-crop rounding differs from later versions)")
    sys.path.insert(0, str(args.stylegan_v.resolve()))
    commit = subprocess.run(["git", "-C", str(args.stylegan_v), "rev-parse", "HEAD"], check=False, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    generated, reference = feature_sets()
    with tempfile.TemporaryDirectory() as folder:
        frames = record_frames(Path(folder))
    np.savez_compressed(args.out, features_generated=generated, features_reference=reference,
                        clip_counts=np.array(CLIP_COUNTS), stylegan_v_commit=np.str_(commit),
                        torchvision_version=np.str_(torchvision.__version__),
                        **record_fvd(generated, reference), **frames)
    print(f"wrote {args.out} from StyleGAN-V {commit}")


if __name__ == "__main__":
    main()

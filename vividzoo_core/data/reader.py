"""Reading a multi-view video dataset: every problem found before training, then paper-style samples.

:func:`scan_dataset` reads every object (captions, cameras, image folders, and every image when
``decode_images``) and reports each problem; :class:`MultiViewVideoDataset` samples like the paper:
``views`` evenly spaced azimuths (4 mutually orthogonal views) out of those rendered, ``frames``
frames at ``frame_stride`` from a random start, resized and centre-cropped to ``image_size``. Every
random choice comes from ``(seed, epoch, index)``, so a resumed run sees exactly the same samples.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ..cameras import CameraRig, load_cameras
from ..errors import VividZooError
from .format import CAMERAS_FILE, CAPTION_FILE, IMAGE_SUFFIXES, VIEWS_FOLDER

CAPTION_SUFFIX = ", 3d asset"
AZIMUTH_TOLERANCE = 2.0  # degrees between a wanted and a rendered azimuth


@dataclass
class VideoObject:
    directory: Path
    caption: str
    cameras: CameraRig
    """Unit-distance poses, one row (static) or one per frame."""
    images: list[list[Path]]
    """``images[view][frame]``."""
    view_sets: list[list[int]] = field(default_factory=list)
    """The evenly spaced view groups available for training."""

    @property
    def views(self) -> int:
        return len(self.images)

    @property
    def frames(self) -> int:
        return len(self.images[0])


@dataclass
class DatasetReport:
    directory: Path
    objects: list[VideoObject]
    problems: list[str]

    def summary(self) -> str:
        lines = [f"{self.directory}: {len(self.objects)} usable objects, {len(self.problems)} problems"]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


def view_azimuths(rig: CameraRig) -> np.ndarray:
    """Azimuth (degrees, [0, 360)) of each view at the first frame, from the angles or the matrices."""
    if rig.azimuths is not None:
        return np.mod(rig.azimuths[0], 360.0)
    position = rig.matrices[0, :, :3, 3]  # Blender world: (cos e sin a, -cos e cos a, sin e)
    return np.mod(np.degrees(np.arctan2(position[:, 0], -position[:, 1])), 360.0)


def evenly_spaced_view_sets(azimuths: np.ndarray, count: int) -> list[list[int]]:
    """Groups of ``count`` views at ``start + i * 360 / count`` degrees (orthogonal for 4), one per start view."""
    sets = []
    for start in range(len(azimuths)):
        chosen = []
        for i in range(count):
            wanted = azimuths[start] + i * 360.0 / count
            gap = np.abs((azimuths - wanted + 180.0) % 360.0 - 180.0)
            best = int(np.argmin(gap))
            if gap[best] > AZIMUTH_TOLERANCE or best in chosen:
                break
            chosen.append(best)
        if len(chosen) == count:
            sets.append(chosen)
    return sets


def scan_dataset(directory: str | Path, views: int = 4, frames_needed: int = 46, decode_images: bool = True,
                 on_progress: Callable[[int, int], None] = lambda done, total: None) -> DatasetReport:
    """Reads every object folder; reports what is missing, malformed or too short for training."""
    directory = Path(directory)
    if not directory.is_dir():
        raise VividZooError(f"dataset folder not found: {directory}")
    folders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise VividZooError(f"{directory} holds no object folders (see vividzoo_core/data/format.py)")
    objects, problems = [], []
    for folder in folders:
        found, issues = _read_object(folder, views, frames_needed)
        problems += [f"{folder.name}: {issue}" for issue in issues]
        if found is not None and not issues:
            objects.append(found)
    if decode_images:
        problems += _undecodable(objects, on_progress)
        broken = {problem.split(":", 1)[0] for problem in problems}
        objects = [o for o in objects if o.directory.name not in broken]
    return DatasetReport(directory, objects, problems)


def _read_object(folder: Path, views: int, frames_needed: int) -> tuple[VideoObject | None, list[str]]:
    issues = []
    caption_file = folder / CAPTION_FILE
    caption = caption_file.read_text(encoding="utf-8", errors="replace").strip() if caption_file.is_file() else None
    if caption is None:
        issues.append(f"no {CAPTION_FILE}")
    elif not caption:
        issues.append(f"{CAPTION_FILE} is empty")
    elif "\n" in caption:
        issues.append(f"{CAPTION_FILE} has more than one line")
    view_root = folder / VIEWS_FOLDER
    view_dirs = sorted(p for p in view_root.iterdir() if p.is_dir()) if view_root.is_dir() else []
    if not view_dirs:
        return None, issues + [f"no view folders in {VIEWS_FOLDER}/"]
    if [p.name for p in view_dirs] != [f"{i:03d}" for i in range(len(view_dirs))]:
        issues.append(f"view folders must be 000, 001, ... in order; found {[p.name for p in view_dirs][:6]}")
    images = []
    for view_dir in view_dirs:
        files = sorted(p for p in view_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        numbers = [int(p.stem) if re.fullmatch(r"\d+", p.stem) else -1 for p in files]
        missing = sorted(set(range(max(numbers, default=-1) + 1)) - set(numbers))
        if -1 in numbers:
            issues.append(f"view {view_dir.name} has image names that are not frame numbers")
        if missing:
            issues.append(f"view {view_dir.name} is missing frame(s) {', '.join(f'{m:04d}' for m in missing[:5])}")
        images.append(files)
    counts = {p.name: len(files) for p, files in zip(view_dirs, images)}
    if len(set(counts.values())) != 1:
        issues.append(f"views have unequal frame counts: {counts}")
    elif min(counts.values()) < frames_needed:
        issues.append(f"has {min(counts.values())} frames; a training clip needs {frames_needed}")
    try:
        rig = load_cameras(folder / CAMERAS_FILE)
    except VividZooError as error:
        return None, issues + [f"{CAMERAS_FILE}: {error}"]
    if rig.views != len(view_dirs):
        issues.append(f"{CAMERAS_FILE} has {rig.views} views but there are {len(view_dirs)} view folders")
    elif rig.frames not in (1, min(counts.values())):
        issues.append(f"{CAMERAS_FILE} has {rig.frames} frames of cameras; give 1 (static) or one per frame "
                      f"({min(counts.values())})")
    view_sets = evenly_spaced_view_sets(view_azimuths(rig), views) if rig.views == len(view_dirs) else []
    if rig.views == len(view_dirs) and not view_sets:
        azimuths = ", ".join(f"{a:.0f}" for a in view_azimuths(rig))
        issues.append(f"no {views} views {360 / views:.0f} degrees apart among the azimuths {azimuths}")
    caption = caption or ""
    if caption and not caption.endswith(CAPTION_SUFFIX.strip(", ")):
        caption += CAPTION_SUFFIX
    return VideoObject(folder, caption, rig, images, view_sets), issues


def _undecodable(objects: list[VideoObject], on_progress: Callable[[int, int], None]) -> list[str]:
    paths = [(o, p) for o in objects for view in o.images for p in view]
    problems: list[str] = []

    def decode(item: tuple[VideoObject, Path]) -> str | None:
        owner, path = item
        try:
            with Image.open(path) as image:
                image.load()
        except (OSError, ValueError, SyntaxError) as error:
            return f"{owner.directory.name}: unreadable image {path.relative_to(owner.directory)} ({error})"
        return None

    with ThreadPoolExecutor() as pool:
        for done, problem in enumerate(pool.map(decode, paths), 1):
            if problem:
                problems.append(problem)
            if done % 256 == 0 or done == len(paths):
                on_progress(done, len(paths))
    return problems


def load_image(path: Path, size: int) -> torch.Tensor:
    """``(3, size, size)`` in [-1, 1]: transparency on white, shorter side resized, centre-cropped."""
    with Image.open(path) as image:
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image).convert("RGB")
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - size) // 2, (height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)


class MultiViewVideoDataset(torch.utils.data.Dataset):
    """Samples ``(epoch, index)`` -> views x frames clip in layout order, its cameras and caption."""

    def __init__(self, objects: list[VideoObject], views: int, frames: int, frame_stride: int, image_size: int,
                 caption_dropout: float, seed: int) -> None:
        self.objects, self.views, self.frames, self.stride = objects, views, frames, frame_stride
        self.image_size, self.caption_dropout, self.seed = image_size, caption_dropout, seed

    def __len__(self) -> int:
        return len(self.objects)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        video = self.objects[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        view_set = video.view_sets[rng.integers(len(video.view_sets))]
        start = int(rng.integers(video.frames - (self.frames - 1) * self.stride))
        frames = [start + f * self.stride for f in range(self.frames)]
        pixels = torch.stack([load_image(video.images[v][f], self.image_size) for f in frames for v in view_set])
        rows = frames if video.cameras.frames > 1 else [0] * self.frames
        matrices = video.cameras.matrices[np.ix_(rows, view_set)].copy()
        matrices[..., :3, 3] /= np.linalg.norm(matrices[..., :3, 3], axis=-1, keepdims=True)
        caption = "" if rng.random() < self.caption_dropout else video.caption
        cameras = torch.from_numpy(matrices.reshape(-1, 16).astype(np.float32))
        return {"pixels": pixels, "cameras": cameras, "caption": caption}

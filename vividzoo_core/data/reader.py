"""Reading a multi-view video dataset: every problem found before training, then paper-style samples.

:func:`scan_dataset` reads every object (captions, cameras, views as image folders or video files,
and every frame when ``decode_images``) and reports each problem; :class:`MultiViewVideoDataset` samples like the paper:
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

from ..cameras import CAMERAS_FILE, CameraRig, at_unit_distance, load_cameras
from ..errors import VividZooError
from .format import CAPTION_FILE, IMAGE_SUFFIXES, VIDEO_SUFFIX, VIEWS_FOLDER
from .frames import FrameSource, ImageFrames, VideoFrames, prepare_image

CAPTION_SUFFIX = ", 3d asset"
AZIMUTH_TOLERANCE = 2.0  # degrees between a wanted and a rendered azimuth


@dataclass
class VideoObject:
    directory: Path
    caption: str
    cameras: CameraRig
    """Unit-distance poses, one row (static) or one per frame."""
    sources: list[FrameSource]
    """The frames of each view."""
    view_sets: list[list[int]] = field(default_factory=list)
    """The evenly spaced view groups available for training."""

    @property
    def views(self) -> int:
        return len(self.sources)

    @property
    def frames(self) -> int:
        return self.sources[0].count


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
        found, issues = read_object(folder, views, frames_needed)
        problems += [f"{folder.name}: {issue}" for issue in issues]
        if found is not None and not issues:
            objects.append(found)
    if decode_images:
        problems += _undecodable(objects, on_progress)
        broken = {problem.split(":", 1)[0] for problem in problems}
        objects = [o for o in objects if o.directory.name not in broken]
    return DatasetReport(directory, objects, problems)


def read_object(folder: Path, views: int, frames_needed: int) -> tuple[VideoObject | None, list[str]]:
    """One object folder (no frames decoded): the object when it can be read at all, and its problems."""
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
    view_dirs = sorted((p for p in view_root.iterdir() if p.is_dir() or p.suffix.lower() == VIDEO_SUFFIX),
                       key=lambda p: p.stem) if view_root.is_dir() else []
    if not view_dirs:
        return None, issues + [f"no view folders or {VIDEO_SUFFIX} files in {VIEWS_FOLDER}/"]
    if [p.stem for p in view_dirs] != [f"{i:03d}" for i in range(len(view_dirs))]:
        issues.append(f"views must be 000, 001, ... in order (folders or {VIDEO_SUFFIX} files, one per view); "
                      f"found {[p.name for p in view_dirs][:6]}")
    sources: list[FrameSource] = []
    for view_dir in view_dirs:
        if not view_dir.is_dir():
            try:
                sources.append(VideoFrames(view_dir))
            except VividZooError as error:
                return None, issues + [str(error)]
            continue
        files = sorted(p for p in view_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        numbers = [int(p.stem) if re.fullmatch(r"\d+", p.stem) else -1 for p in files]
        missing = sorted(set(range(max(numbers, default=-1) + 1)) - set(numbers))
        if -1 in numbers:
            issues.append(f"view {view_dir.name} has image names that are not frame numbers")
        if missing:
            issues.append(f"view {view_dir.name} is missing frame(s) {', '.join(f'{m:04d}' for m in missing[:5])}")
        sources.append(ImageFrames(view_dir.name, files))
    counts = {source.name: source.count for source in sources}
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
    return VideoObject(folder, caption, rig, sources, view_sets), issues


def _undecodable(objects: list[VideoObject], on_progress: Callable[[int, int], None]) -> list[str]:
    """Decodes every frame of every view (one view per task); progress counts frames."""
    views = [(o, source) for o in objects for source in o.sources]
    total, done, problems = sum(source.count for _, source in views), 0, []

    def decode(item: tuple[VideoObject, FrameSource]) -> tuple[int, list[str]]:
        owner, source = item
        return source.count, [f"{owner.directory.name}: {problem}" for problem in source.unreadable()]

    with ThreadPoolExecutor() as pool:
        for frames, found in pool.map(decode, views):
            done += frames
            problems += found
            on_progress(done, total)
    return problems


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
        video, view_set, frames, dropped = self.choose(epoch, index)
        by_view = [video.sources[v].read(frames) for v in view_set]
        pixels = torch.stack([prepare_image(by_view[i][f], self.image_size)
                              for f in range(self.frames) for i in range(len(view_set))])
        caption = "" if dropped else video.caption
        return {"pixels": pixels, "cameras": self.cameras(video, view_set, frames), "caption": caption}

    def choose(self, epoch: int, index: int) -> tuple[VideoObject, list[int], list[int], bool]:
        """The object, its views, its frames and whether the caption is dropped, for ``(epoch, index)``."""
        video = self.objects[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        view_set = video.view_sets[rng.integers(len(video.view_sets))]
        start = int(rng.integers(video.frames - (self.frames - 1) * self.stride))
        frames = [start + f * self.stride for f in range(self.frames)]
        return video, view_set, frames, bool(rng.random() < self.caption_dropout)

    def cameras(self, video: VideoObject, view_set: list[int], frames: list[int]) -> torch.Tensor:
        """``(frames * views, 16)`` unit-distance camera-to-world matrices in layout order."""
        rows = frames if video.cameras.frames > 1 else [0] * self.frames
        matrices = at_unit_distance(video.cameras.matrices[np.ix_(rows, view_set)])
        return torch.from_numpy(matrices.reshape(-1, 16).astype(np.float32))

"""Reading a multi-view video dataset: every problem found before training, then paper-style samples.

:func:`scan_dataset` reads every object (captions, cameras, views as image folders or video files,
and every frame when ``decode_images``) and reports each problem; given the manifest that
``vividzoo dataset check`` writes (:mod:`.manifest`), it takes the unchanged objects from there and
opens no file of theirs. :class:`MultiViewVideoDataset` samples like the paper:
``views`` evenly spaced azimuths (4 mutually orthogonal views) out of those rendered, ``frames``
frames at ``frame_stride`` from a random start, resized and centre-cropped to ``image_size``. Every
random choice comes from ``(seed, epoch, index)``, so a resumed run sees exactly the same samples.
With :class:`SkippedSamples`, an object that fails to load is logged and replaced by the next one,
until too many fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cameras import CAMERAS_FILE, CameraRig, at_unit_distance, load_cameras
from ..errors import VividZooError
from .format import CAPTION_FILE, IMAGE_SUFFIXES, VIDEO_SUFFIX, VIEWS_FOLDER
from .frames import FrameSource, ImageFrames, VideoFrames, prepare_images
from .manifest import fingerprint, read_manifest, source_from_record, source_record, write_manifest

CAPTION_SUFFIX = ", 3d asset"
AZIMUTH_TOLERANCE = 2.0  # degrees between a wanted and a rendered azimuth
FOLDERS_PER_TASK = 32


@dataclass
class VideoObject:
    directory: Path
    caption: str
    sources: list[FrameSource]
    """The frames of each view."""
    azimuths: np.ndarray | None
    """Each view's azimuth at the first frame; ``None`` when ``cameras.json`` does not fit the views."""
    rig: CameraRig | None = None
    """The cameras when read with the object; ``None`` (taken from the manifest): read on use."""
    view_sets: list[list[int]] = field(default_factory=list)
    """The evenly spaced view groups available for training."""

    @property
    def cameras(self) -> CameraRig:
        """Unit-distance poses, one row (static) or one per frame."""
        return self.rig if self.rig is not None else load_cameras(self.directory / CAMERAS_FILE)

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
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What the manifest keeps of every object folder read."""
    reused: int = 0
    """Objects taken from the manifest."""

    def summary(self) -> str:
        lines = [f"{self.directory}: {len(self.objects)} usable objects, {len(self.problems)} problems"]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)

    def save_manifest(self) -> Path:
        """Writes what was read, for :func:`scan_dataset` with ``use_manifest`` (training) to reuse."""
        return write_manifest(self.directory, self.records)


def clip_span(frames: int, stride: int) -> int:
    """Frames a video must have for a clip of ``frames`` frames taken every ``stride``:
    ``(frames - 1) * stride + 1``."""
    return (frames - 1) * stride + 1


def view_azimuths(rig: CameraRig) -> np.ndarray:
    """Azimuth (degrees, [0, 360)) of each view at the first frame, from the angles or the matrices."""
    if rig.azimuths is not None:
        return np.mod(rig.azimuths[0], 360.0)
    position = rig.matrices[0, :, :3, 3]  # Blender world: (cos e sin a, -cos e cos a, sin e)
    return np.mod(np.degrees(np.arctan2(position[:, 0], -position[:, 1])), 360.0)


def evenly_spaced_view_sets(azimuths: np.ndarray, count: int) -> list[list[int]]:
    """Groups of ``count`` views at ``start + i * 360 / count`` degrees (orthogonal for 4), one per start view."""
    wanted = azimuths[:, None] + np.arange(count) * 360.0 / count  # (start view, i)
    gap = np.abs((azimuths[None, None, :] - wanted[..., None] + 180.0) % 360.0 - 180.0)  # (start, i, view)
    best = gap.argmin(-1)
    close = np.take_along_axis(gap, best[..., None], -1)[..., 0] <= AZIMUTH_TOLERANCE
    return [chosen.tolist() for chosen, fits in zip(best, close.all(-1)) if fits and len(set(chosen)) == count]


def scan_dataset(directory: str | Path, views: int = 4, frames_needed: int = 46, decode_images: bool = True,
                 on_progress: Callable[[int, int], None] = lambda done, total: None,
                 use_manifest: bool = False) -> DatasetReport:
    """Reads every object folder; reports what is missing, malformed or too short for training.

    ``use_manifest``: objects whose files are unchanged since the manifest was written are taken
    from it (nothing of theirs is opened; frames recorded as decoded are not decoded again).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise VividZooError(f"dataset folder not found: {directory}")
    folders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise VividZooError(f"{directory} holds no object folders (see vividzoo_core/data/format.py)")
    recorded = read_manifest(directory) if use_manifest else {}
    report = DatasetReport(directory, [], [])

    def read(folder: Path) -> tuple[VideoObject | None, list[str], dict[str, Any], bool]:
        stamp = fingerprint(folder)
        record = recorded.get(folder.name)
        if record is not None and record.get("fingerprint") == stamp:
            try:
                return (*_from_record(folder, record), record, True)
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                pass  # not a record this version wrote: read the folder
        found, issues = _read_folder(folder)
        return found, issues, _record(stamp, found, issues), False

    # Threads: opening video headers and the stat calls wait on the disk and in FFmpeg, outside Python's
    # lock; a task reads a run of folders, since 53K tasks would cost seconds on their own.
    runs = [folders[start:start + FOLDERS_PER_TASK] for start in range(0, len(folders), FOLDERS_PER_TASK)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        read_folders = [found for run in pool.map(lambda run: [read(folder) for folder in run], runs) for found in run]
    for folder, (found, issues, record, reused) in zip(folders, read_folders):
        report.records[folder.name] = record
        report.reused += reused
        if found is not None and not issues:
            issues = training_problems(found, views, frames_needed)
            if not issues:
                report.objects.append(found)
        report.problems += [f"{folder.name}: {issue}" for issue in issues]
    if decode_images:
        to_decode = [video for video in report.objects if not report.records[video.directory.name].get("decoded")]
        undecodable = _undecodable(to_decode, on_progress)
        for video in to_decode:
            name = video.directory.name
            found = undecodable.get(name)
            record = report.records[name]
            report.records[name] = ({"fingerprint": record["fingerprint"], "decoded": True, "problems": found} if found
                                    else {**record, "decoded": True})
            report.problems += [f"{name}: {problem}" for problem in found or []]
        report.objects = [video for video in report.objects if video.directory.name not in undecodable]
    return report


def read_object(folder: Path, views: int, frames_needed: int) -> tuple[VideoObject | None, list[str]]:
    """One object folder (no frames decoded): the object when it can be read at all, and its problems."""
    found, issues = _read_folder(folder)
    if found is not None and not issues:
        issues = training_problems(found, views, frames_needed)
    return found, issues


def training_problems(video: VideoObject, views: int, frames_needed: int) -> list[str]:
    """What keeps a well-formed object from training at these settings; sets its view sets."""
    issues = []
    if video.frames < frames_needed:
        issues.append(f"has {video.frames} frames; a training clip needs {frames_needed}")
    video.view_sets = evenly_spaced_view_sets(video.azimuths, views)
    if not video.view_sets:
        azimuths = ", ".join(f"{a:.0f}" for a in video.azimuths)
        issues.append(f"no {views} views {360 / views:.0f} degrees apart among the azimuths {azimuths}")
    return issues


def _read_folder(folder: Path) -> tuple[VideoObject | None, list[str]]:
    """The object and the problems that do not depend on the training settings."""
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
        numbered = {}
        for path in view_dir.iterdir():
            if path.suffix.lower() in IMAGE_SUFFIXES:
                numbered[path] = int(path.stem) if re.fullmatch(r"\d+", path.stem) else -1
        files = sorted(numbered, key=lambda p: (numbered[p], p.name))  # frame order, also for unpadded numbers
        numbers = sorted(numbered.values())
        missing = sorted(set(range(max(numbers, default=-1) + 1)) - set(numbers))
        if -1 in numbers:
            issues.append(f"view {view_dir.name} has image names that are not frame numbers")
        if missing:
            issues.append(f"view {view_dir.name} is missing frame(s) {', '.join(f'{m:04d}' for m in missing[:5])}")
        sources.append(ImageFrames(view_dir.name, files))
    counts = {source.name: source.count for source in sources}
    if len(set(counts.values())) != 1:
        issues.append(f"views have unequal frame counts: {counts}")
    try:
        rig = load_cameras(folder / CAMERAS_FILE)
    except VividZooError as error:
        return None, issues + [f"{CAMERAS_FILE}: {error}"]
    if rig.views != len(view_dirs):
        issues.append(f"{CAMERAS_FILE} has {rig.views} views but there are {len(view_dirs)} view folders")
    elif rig.frames not in (1, min(counts.values())):
        issues.append(f"{CAMERAS_FILE} has {rig.frames} frames of cameras; give 1 (static) or one per frame "
                      f"({min(counts.values())})")
    caption = caption or ""
    if caption and not caption.endswith(CAPTION_SUFFIX.strip(", ")):
        caption += CAPTION_SUFFIX
    azimuths = view_azimuths(rig) if rig.views == len(view_dirs) else None
    return VideoObject(folder, caption, sources, azimuths, rig), issues


def _record(stamp: str, video: VideoObject | None, issues: list[str]) -> dict[str, Any]:
    """The manifest's record of a folder just read (frames not decoded yet)."""
    record: dict[str, Any] = {"fingerprint": stamp, "decoded": False}
    if issues or video is None:
        return {**record, "problems": issues}
    sources = [source_record(source) for source in video.sources]
    if None in sources:
        return {**record, "reread": "image names of no single pattern"}
    return {**record, "caption": video.caption, "azimuths": video.azimuths.tolist(), "views": sources}


def _from_record(folder: Path, record: dict[str, Any]) -> tuple[VideoObject | None, list[str]]:
    if "problems" in record:
        return None, [str(problem) for problem in record["problems"]]
    if "views" not in record:
        raise KeyError("views")
    sources = [source_from_record(folder / VIEWS_FOLDER, view) for view in record["views"]]
    return VideoObject(folder, str(record["caption"]), sources, np.asarray(record["azimuths"], dtype=np.float64)), []


def _undecodable(objects: list[VideoObject], on_progress: Callable[[int, int], None]) -> dict[str, list[str]]:
    """Decodes every frame of every view (one view per task); the problems by object; progress counts frames."""
    views = [(o, source) for o in objects for source in o.sources]
    total, done, problems = sum(source.count for _, source in views), 0, {}

    def decode(item: tuple[VideoObject, FrameSource]) -> tuple[int, str, list[str]]:
        owner, source = item
        return source.count, owner.directory.name, source.unreadable()

    with ThreadPoolExecutor() as pool:
        for frames, name, found in pool.map(decode, views):
            done += frames
            if found:
                problems.setdefault(name, []).extend(found)
            on_progress(done, total)
    return problems


SKIPPED_FILE = "skipped_samples.jsonl"
FAILURES_BEFORE_JUDGING = 20


class SkippedSamples:
    """Objects that failed to load in training: each logged (a line, and a JSON line in ``output/``)
    and never tried again; when more than ``max_fraction`` of the objects read have failed, the run stops.

    Counted per process (a data-loader worker judges its own share). The judgement waits for
    ``FAILURES_BEFORE_JUDGING`` failures, so that a few broken objects early in a run cannot stop
    it; with ``max_fraction`` 0 the first failure stops it.
    """

    def __init__(self, output: Path, max_fraction: float, log: Callable[[str], None] = print) -> None:
        self.path, self.max_fraction, self.log = Path(output) / SKIPPED_FILE, max_fraction, log
        self.broken: dict[int, str] = {}
        self.loaded = 0

    def record(self, video: VideoObject, epoch: int, index: int, error: VividZooError) -> None:
        name = video.directory.name
        self.broken[index] = f"{name}: {error}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"object": name, "epoch": epoch, "index": index, "error": str(error)}) + "\n")
        failed, read = len(self.broken), len(self.broken) + self.loaded
        if failed > self.max_fraction * read and (failed >= FAILURES_BEFORE_JUDGING or self.max_fraction == 0):
            first = next(iter(self.broken.values()))
            raise VividZooError(
                f"{failed} of the {read} objects read failed to load, more than max_broken_fraction "
                f"{self.max_fraction:g} allows: the dataset looks broken (first: {first}; all in {self.path}). "
                f"`vividzoo dataset check {video.directory.parent}` lists every problem")
        self.log(f"skipped {name} (training goes on with the next object; {self.path} lists every skip): {error}")


class MultiViewVideoDataset(torch.utils.data.Dataset):
    """Samples ``(epoch, index)`` -> views x frames clip in layout order, its cameras and caption.

    With ``skipped``, an object that fails to load is logged and replaced by the next one that loads,
    the same one for the same key, so a resumed run still repeats an uninterrupted one.
    """

    def __init__(self, objects: list[VideoObject], views: int, frames: int, frame_stride: int, image_size: int,
                 caption_dropout: float, seed: int, skipped: SkippedSamples | None = None) -> None:
        self.objects, self.views, self.frames, self.stride = objects, views, frames, frame_stride
        self.image_size, self.caption_dropout, self.seed = image_size, caption_dropout, seed
        self.skipped = skipped

    def __len__(self) -> int:
        return len(self.objects)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        if self.skipped is None:
            return self.sample(epoch, index)
        for _ in range(len(self.objects)):
            if index not in self.skipped.broken:
                try:
                    sample = self.sample(epoch, index)
                except VividZooError as error:
                    self.skipped.record(self.objects[index], epoch, index, error)
                else:
                    self.skipped.loaded += 1
                    return sample
            index = (index + 1) % len(self.objects)
        raise VividZooError(f"no object of {self.objects[0].directory.parent} loads ({self.skipped.path} lists why)")

    def sample(self, epoch: int, index: int) -> dict:
        video, view_set, frames, dropped = self.choose(epoch, index)
        by_view = [video.sources[v].read(frames) for v in view_set]
        pixels = prepare_images([by_view[i][f] for f in range(self.frames) for i in range(len(view_set))],
                                self.image_size)
        caption = "" if dropped else video.caption
        return {"pixels": pixels, "cameras": self.cameras(video, view_set, frames), "caption": caption}

    def choose(self, epoch: int, index: int) -> tuple[VideoObject, list[int], list[int], bool]:
        """The object, its views, its frames and whether the caption is dropped, for ``(epoch, index)``."""
        video = self.objects[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        view_set = video.view_sets[rng.integers(len(video.view_sets))]
        start = int(rng.integers(video.frames - clip_span(self.frames, self.stride) + 1))
        frames = [start + f * self.stride for f in range(self.frames)]
        return video, view_set, frames, bool(rng.random() < self.caption_dropout)

    def cameras(self, video: VideoObject, view_set: list[int], frames: list[int]) -> torch.Tensor:
        """``(frames * views, 16)`` unit-distance camera-to-world matrices in layout order."""
        rows = frames if video.cameras.frames > 1 else [0] * self.frames
        matrices = at_unit_distance(video.cameras.matrices[np.ix_(rows, view_set)])
        return torch.from_numpy(matrices.reshape(-1, 16).astype(np.float32))

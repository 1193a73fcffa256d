"""What ``vividzoo dataset check`` found, kept so that training starts without opening every video again.

``DATASET/vividzoo-manifest.json`` holds per object folder a fingerprint of the files the reader uses
(the names, sizes and modification times of ``caption.txt``, ``cameras.json`` and every entry of
``views/``, links followed; an image folder's time changes when frames are added, removed or
renamed) and what reading them gave: the problems that do not depend on the training settings, and
for a usable object its caption, the views' azimuths, and per view its frame count with a video's
frame rate or an image folder's frame names (lists, for 53K objects x 16 views: ``[file, frames,
rate]``, ``[folder, frames, digits, suffix]``). ``decoded`` says whether every frame was decoded.

A reader given the manifest takes an object from it when the fingerprint is unchanged: no video is
opened, and ``cameras.json`` is read when a sample is drawn. Anything else is read again. A frame
rewritten in place inside an image folder goes unnoticed here; training skips such a sample if it
no longer decodes, and logs it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..cameras import CAMERAS_FILE
from .format import CAPTION_FILE, VIEWS_FOLDER
from .frames import FrameSource, ImageFrames, NumberedPaths, VideoFrames

MANIFEST_FILE = "vividzoo-manifest.json"
MANIFEST_FORMAT = "vividzoo-manifest-1"


def fingerprint(folder: Path) -> str:
    """A digest of the names, sizes and modification times of the files an object is read from."""
    parts = [_stat(name, folder / name) for name in (CAPTION_FILE, CAMERAS_FILE)]
    try:
        with os.scandir(folder / VIEWS_FOLDER) as entries:
            parts += sorted(_stat(entry.name, entry.path) for entry in entries)
    except OSError:
        parts.append(f"no {VIEWS_FOLDER}")
    return hashlib.blake2b("\n".join(parts).encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def _stat(name: str, path: str | Path) -> str:
    try:
        info = os.stat(path)
    except OSError:
        return f"{name} missing"
    return f"{name} {info.st_size} {info.st_mtime_ns}"


def source_record(source: FrameSource) -> list[Any] | None:
    """What rebuilds ``source`` without opening anything: ``[file, frames, rate]`` for a video,
    ``[folder, frames, digits, suffix]`` for numbered images; ``None`` for image names of no single pattern."""
    if isinstance(source, VideoFrames):
        return [source.name, source.count, str(source.fps)]
    pattern = NumberedPaths.of(source.paths) if isinstance(source, ImageFrames) else None
    return None if pattern is None else [source.name, pattern.frames, pattern.digits, pattern.suffix]


def source_from_record(views: Path, record: list[Any]) -> FrameSource:
    if len(record) == 3:
        name, frames, rate = record
        return VideoFrames.recorded(views, name, int(frames), _rate(rate))
    name, frames, digits, suffix = record
    return ImageFrames(name, NumberedPaths(views / name, int(frames), int(digits), suffix))


@functools.lru_cache(maxsize=64)
def _rate(text: str) -> Fraction:
    """Parsed once per distinct rate: a dataset has few, and 53K objects x 16 views would parse them 850K times."""
    return Fraction(text)


def read_manifest(directory: Path) -> dict[str, dict[str, Any]]:
    """The recorded objects by folder name; none when there is no readable manifest (all are read again)."""
    try:
        data = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("objects"), dict):
        return {}
    return data["objects"]


def write_manifest(directory: Path, objects: dict[str, dict[str, Any]]) -> Path:
    """Written beside and renamed, so a reader never sees half a manifest."""
    path = directory / MANIFEST_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"format": MANIFEST_FORMAT, "objects": objects}, separators=(",", ":")),
                       encoding="utf-8")
    os.replace(partial, path)
    return path

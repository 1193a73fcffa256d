"""Importing Animate3D's MV-Video dataset (53K animated Objaverse objects, ODC-By) without copying frames.

MV-Video as published (huggingface.co/datasets/yanqinJiang/MV-Video)::

    videos/<uid>/<anim>/view_<k>.mp4     16 views evenly spaced in azimuth, 2 s at 24 fps
    uid_info_dict.json                   {uid: {"url": ..., "anim": {anim: {"angle": {"elv": e,
                                          "azi_start": a}, "text_prompt": "..."}}}}
    high_quality_uid.txt                 optional subset, one uid per line

Each ``<uid>/<anim>`` becomes one object folder ``<uid>-<anim>``: ``caption.txt`` (the text prompt),
``cameras.json`` and ``views/000.mp4 ...`` as symbolic links to the downloaded videos.

Camera convention, as far as Animate3D's public code states it (its data loader builds the cameras
the model was trained with from ``elv`` and ``azi_start`` alone): view ``k`` sits at elevation ``elv``
and azimuth ``azi_start + k * 360 / 16`` degrees, with the threestudio formula
``p = (cos e cos b, cos e sin b, sin e)`` in a z-up world, looking at the origin, up +z.
Vivid-ZOO's azimuth ``a`` puts the camera at ``(cos e sin a, -cos e cos a, sin e)`` (Blender world),
so we write MV-Video's azimuth ``b`` as ``a = b + 90`` (:data:`~vividzoo_core.cameras.THREESTUDIO_AZIMUTH_OFFSET`):
``sin(b + 90) = cos b`` and ``-cos(b + 90) = sin b`` put the camera on the same point. Azimuth grows
counter-clockwise seen from above in both. Assumed, not published: that the videos were rendered
with the same cameras the loader describes, and the distance and field of view (the camera
embedding only takes unit-distance poses, so they matter only for a pixel check). Check on real data
with ``vividzoo dataset check DATA``: its camera check (:mod:`.camera_check`) carves the views'
silhouettes through these cameras and names objects whose views disagree. A wrong direction or
elevation sign fails it; the distance does not matter; a field of view 10 degrees off the assumed 40
costs up to 0.03 of the score (20 degrees narrower, 0.05 to 0.09). No check from images can see a
wrong azimuth start: ``vividzoo dataset camera-overlay DATA/<uid>-<anim> --out overlay.png`` labels
every view with its azimuth, for a person to see that azimuth 0 shows the object's front.

Frames: every decoded frame of a video is used. The data card says animations longer than 4 s were
rendered as their first and last 2 s; Animate3D's loader reads only the first 48 frames. If such a
video holds both parts (96 frames), a 46-frame clip can span the cut; ``dataset check`` shows the
frame counts (not verified on the real download).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cameras import CAMERAS_FILE, THREESTUDIO_AZIMUTH_OFFSET, orbit
from ..errors import VividZooError
from .format import CAPTION_FILE, view_video

MV_VIDEO_VIEWS = 16
PARTIAL_PREFIX = ".partial-"


@dataclass(frozen=True)
class Animation:
    uid: str
    anim: str
    elevation: float
    azimuth_start: float
    caption: str

    @property
    def folder_name(self) -> str:
        return f"{self.uid}-{self.anim}"


@dataclass
class ImportSummary:
    imported: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    not_downloaded: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"imported {len(self.imported)} animations, {len(self.already_there)} already imported, "
                 f"{len(self.not_downloaded)} listed but not downloaded, {len(self.problems)} problems"]
        return "\n".join(lines + [f"  - {problem}" for problem in self.problems])


def read_info(path: Path, only: Path | None = None) -> list[Animation]:
    """Every animation in ``uid_info_dict.json`` (restricted to the uids in ``only``), checked in full first."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise VividZooError(
            f"{path.name}: not readable JSON ({error}); expected MV-Video's uid_info_dict.json"
        ) from None
    if not isinstance(info, dict):
        raise VividZooError(f'{path.name}: expected an object {{uid: {{"anim": {{...}}}}}}, got {type(info).__name__}')
    wanted = None
    if only is not None:
        wanted = {line.strip() for line in only.read_text(encoding="utf-8").splitlines() if line.strip()}
        if not wanted & set(info):
            raise VividZooError(f"{only.name}: none of its {len(wanted)} uids is in {path.name}")
    animations = []
    for uid, entry in info.items():
        if wanted is not None and uid not in wanted:
            continue
        anims = entry.get("anim") if isinstance(entry, dict) else None
        if not isinstance(anims, dict):
            raise VividZooError(f"{path.name}: {uid} has no \"anim\" object (expected {{\"00\": {{\"angle\": ...}}}})")
        for anim, details in anims.items():
            animations.append(_animation(path.name, uid, anim, details))
    return animations


def _animation(source: str, uid: str, anim: str, details: Any) -> Animation:
    where = f"{source}: {uid} anim {anim}"
    angle = details.get("angle") if isinstance(details, dict) else None
    if not isinstance(angle, dict):
        raise VividZooError(f"{where} has no \"angle\" object with \"elv\" and \"azi_start\"")
    values = []
    for key in ("elv", "azi_start"):
        value = angle.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise VividZooError(f"{where}: angle.{key} must be a number of degrees, got {value!r}")
        values.append(float(value))
    if not -90 < values[0] < 90:
        raise VividZooError(f"{where}: angle.elv must be between -90 and 90 degrees, got {values[0]:g}")
    caption = details.get("text_prompt")
    if not isinstance(caption, str) or not caption.strip():
        raise VividZooError(f"{where}: text_prompt must be a non-empty string, got {caption!r}")
    return Animation(uid, anim, values[0], values[1], " ".join(caption.split()))


def import_mv_video(videos: Path, info: Path, out: Path, only: Path | None = None, views: int = MV_VIDEO_VIEWS,
                    on_progress: Callable[[int, int], None] = lambda done, total: None) -> ImportSummary:
    """Writes one object folder per downloaded animation; finished folders are skipped, so reruns resume."""
    animations = read_info(info, only)
    out.mkdir(parents=True, exist_ok=True)
    summary = ImportSummary()
    for done, animation in enumerate(animations, 1):
        source = videos / animation.uid / animation.anim
        target = out / animation.folder_name
        if target.exists():
            summary.already_there.append(animation.folder_name)
        elif not source.is_dir():
            summary.not_downloaded.append(animation.folder_name)
        else:
            problem = _import(animation, source, target, views)
            if problem:
                summary.problems.append(f"{source}: {problem}")
            else:
                summary.imported.append(animation.folder_name)
        on_progress(done, len(animations))
    return summary


def _import(animation: Animation, source: Path, target: Path, views: int) -> str | None:
    found = {int(m.group(1)): p for p in source.iterdir() if (m := re.fullmatch(r"view_(\d+)\.mp4", p.name))}
    missing = [f"view_{k}.mp4" for k in range(views) if k not in found]
    if missing:
        return f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} (MV-Video has view_0.mp4 to " \
               f"view_{views - 1}.mp4)"
    if len(found) > views:
        return f"has {len(found)} views; expected {views} (view_0.mp4 to view_{views - 1}.mp4)"
    # Built beside the target and renamed when complete: an interrupted run leaves no half object.
    partial = target.with_name(PARTIAL_PREFIX + target.name)
    shutil.rmtree(partial, ignore_errors=True)
    for k in range(views):
        link = view_video(partial, k)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(found[k].resolve(), link)
    (partial / CAPTION_FILE).write_text(animation.caption + "\n", encoding="utf-8")
    orbit(views, animation.elevation, animation.azimuth_start + THREESTUDIO_AZIMUTH_OFFSET).save(partial / CAMERAS_FILE)
    partial.rename(target)
    return None

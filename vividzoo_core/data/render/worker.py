"""One asset, rendered in its own process: ``python -m vividzoo_core.data.render.worker JOB.json``.

The batch starts one worker per asset, so a crash or hang inside Blender costs only that asset.
Each animation becomes one object folder, rendered in a temporary folder and renamed into place when
complete. The worker keeps its outcome in the job's ``result`` file, rewritten after every animation:
the objects rendered, why each other animation was not, or why the whole asset failed. A job whose
``task`` is :data:`CONDITION_VIEWS_TASK` renders one still instead (:mod:`.condition_views`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from ...cameras import CAMERAS_FILE, orbit
from ..format import CAPTION_FILE, frame_path
from .batch import write_atomically
from .settings import CONDITION_VIEWS_TASK, RenderSettings, frame_times, object_draws

RENDER_FILE = "render.json"
"""A job's ``task`` for :mod:`.condition_views`; a job without one renders an asset's animations into a dataset."""


def object_ids(stem: str, animations: list[str]) -> list[str]:
    """Folder names ``<asset stem>--<animation>``, made filesystem-safe and unique."""
    ids: list[str] = []
    for name in animations:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "animation"
        candidate, number = f"{stem}--{slug}", 2
        while candidate in ids:
            candidate, number = f"{stem}--{slug}-{number}", number + 1
        ids.append(candidate)
    return ids


def render_asset(asset: Path, out: Path, work: Path, settings: RenderSettings, caption: str | None,
                 report: Callable[[dict[str, Any]], None] = lambda result: None) -> dict[str, Any]:
    """Renders every animation of ``asset`` that has no folder in ``out`` yet.

    An animation that fails (or moves nothing) costs only itself: its reason joins ``failures`` and the
    next one starts from a freshly loaded scene. ``report`` gets the result after every animation, so
    the objects already in ``out`` are known even if Blender dies later.
    """
    from . import scene

    with asset.open("rb") as source:  # file_digest: Python 3.11, like bpy
        digest = hashlib.file_digest(source, "sha256").hexdigest()
    scene.load_asset(asset, settings.fps)
    names = list(scene.find_animations())
    if not names:
        raise scene.AssetError("it has no animation (no action with keyframes); static assets are not rendered")
    result: dict[str, Any] = {"status": "rendered", "objects": [], "images": 0, "failures": []}
    fresh = True
    for name, object_id in zip(names, object_ids(asset.stem, names)):
        if (out / object_id).is_dir():
            continue
        folder = work / f"{object_id}.{os.getpid()}"
        shutil.rmtree(folder, ignore_errors=True)
        provenance = {"source": str(asset.resolve()), "sha256": digest, "animation": name}
        try:
            if not fresh:
                scene.load_asset(asset, settings.fps)
            fresh = False
            images = _render_animation(scene, folder, object_id, name, settings, caption, provenance)
        except Exception as error:  # noqa: BLE001 (one animation's failure, whatever it is, must not cost the others)
            if not isinstance(error, scene.AssetError):
                traceback.print_exc()  # into the asset's log
            result["failures"].append({"animation": name, "reason": _reason(error)})
            shutil.rmtree(folder, ignore_errors=True)
        else:
            try:
                folder.rename(out / object_id)
            except OSError:  # another run finished this object meanwhile
                shutil.rmtree(folder)
            else:
                result["objects"].append(object_id)
                result["images"] += images
        report(result)
    return result


def _reason(error: Exception) -> str:
    from .scene import AssetError, error_line

    if isinstance(error, AssetError):
        return str(error)
    return f"Blender failed on it: {type(error).__name__}: {error_line(str(error))}"


def _render_animation(scene: ModuleType, folder: Path, object_id: str, name: str, settings: RenderSettings,
                      caption: str | None, provenance: dict[str, Any]) -> int:
    bindings = scene.find_animations()[name]
    start, end = scene.play(bindings)
    only_moves = scene.only_moves(bindings)
    source_fps = scene.scene_fps()
    frames = [start + t * source_fps for t in frame_times((end - start) / source_fps, settings)]
    scene.remove_lights_and_cameras()
    low, high, moves = scene.bounding_box(frames)
    if only_moves and not moves:
        raise scene.AssetError("it moves no geometry (its keys drive only cameras, lights or other things that are "
                               "not rendered); like static assets, it is not rendered")
    centre, scale = scene.normalise(low, high, settings.framing_sphere_radius())
    elevation, azimuth_start = object_draws(settings, object_id)
    rig = orbit(settings.views, elevation, azimuth_start)
    cameras = scene.add_cameras(rig.matrices[0], settings.radius, settings.fov_degrees)
    scene.configure_render(settings)
    for index, frame in enumerate(frames):
        scene.render_views(cameras, frame, [frame_path(folder, view, index) for view in range(settings.views)])
    rig.save(folder / CAMERAS_FILE)
    if caption:
        (folder / CAPTION_FILE).write_text(caption + "\n", encoding="utf-8")
    record = {
        **provenance,
        "source_fps": source_fps,
        "animation_frame_range": [start, end],
        "source_frames": frames,
        "fps": settings.fps,
        "frames": len(frames),
        "normalisation": {"centre": centre.tolist(), "scale": scale,
                          "rule": "world point p is rendered at scale * (p - centre)"},
        "elevation": elevation,
        "azimuth_start": azimuth_start,
        "lighting": scene.LIGHTING,
        "blender": scene.BLENDER_VERSION,
        "settings": settings.to_json(),
    }
    (folder / RENDER_FILE).write_text(json.dumps(record, indent=1))
    return len(frames) * settings.views


def main(argv: list[str] | None = None) -> int:
    job = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    from .scene import AssetError

    def report(result: dict[str, Any]) -> None:
        write_atomically(Path(job["result"]), json.dumps(result))  # the batch never reads half a result

    try:
        if job.get("task") == CONDITION_VIEWS_TASK:
            from .condition_views import render_in_blender

            report(render_in_blender(Path(job["asset"]), Path(job["out"]), RenderSettings.from_json(job["settings"])))
        else:
            report(render_asset(Path(job["asset"]), Path(job["out"]), Path(job["work"]),
                                RenderSettings.from_json(job["settings"]), job.get("caption"), report))
    except AssetError as error:
        report({"status": "failed", "reason": str(error), "objects": [], "images": 0, "failures": []})
    return 0


if __name__ == "__main__":
    sys.exit(main())

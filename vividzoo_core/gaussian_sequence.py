"""A sequence of 3D Gaussians over time (LGM per frame, L4GM) on disk: one PLY per frame, a manifest, a turntable.

:func:`save_gaussian_sequence` writes into a folder, under the names defined here (the command line and the
ComfyUI node use the same):

- ``gaussians/frame_000.ply`` ...: one standard 3DGS PLY per frame (:func:`vividzoo_core.gaussians.write_ply`,
  LGM's ``save_ply`` byte for byte);
- ``gaussians.json``: the manifest (:data:`MANIFEST_FORMAT`): fps, the files in order, the Gaussians kept in
  each, the input cameras (camera-to-world in the Gaussians' world, OpenGL axes, with field of view and
  near/far planes), the turntable's settings, and ``info`` (the settings and scores of the run);
- ``turntable.mp4``: the sequence playing in a loop while the camera turns once around it, rendered by
  :func:`vividzoo_core.splatting.render` and written by :func:`vividzoo_core.video.write_mp4`.

Nothing is overwritten: if any of these exists in the folder, nothing is written and a VividZooError says which.
:func:`load_gaussian_sequence` reads a folder back (to re-render or inspect it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import VividZooError
from .gaussians import PLY_PROPERTIES, check_gaussians, ply_columns, read_ply, write_ply
from .lgm_cameras import RADIUS
from .splatting import SplatCamera, render, turntable
from .video import DEFAULT_FPS, write_mp4

MANIFEST_FILE = "gaussians.json"
PLY_FOLDER = "gaussians"
TURNTABLE_MP4 = "turntable.mp4"
MANIFEST_FORMAT = "vividzoo-gaussian-sequence"
MANIFEST_VERSION = 1
CAMERA_CONVENTION = ("camera-to-world, OpenGL camera axes (x right, y up, z back), the Gaussians' world (y up), "
                     "4x4 row-major; vertical field of view in degrees; near/far planes")
TURNTABLE_MIN_FRAMES = 48
"""A turntable has at least this many frames: short sequences loop while the camera turns once."""


def ply_name(frame: int) -> str:
    """The PLY of ``frame``, relative to the sequence's folder."""
    return f"{PLY_FOLDER}/frame_{frame:03d}.ply"


@dataclass
class TurntableSettings:
    size: int = 256
    elevation: float = 0.0
    """Degrees above the object (positive looks down)."""
    radius: float = RADIUS
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    backend: str = "auto"
    """Renderer: see :func:`vividzoo_core.splatting.render`."""


@dataclass
class GaussianSequence:
    frames: list[torch.Tensor]
    """One ``(N, 14)`` tensor of activated Gaussians per frame (:mod:`vividzoo_core.gaussians`)."""
    fps: float = DEFAULT_FPS
    cameras: list[list[SplatCamera]] | None = None
    """The cameras of the input views, ``[frame][view]`` (one row when they do not move), or None."""
    info: dict = field(default_factory=dict)
    """Settings and scores of the run (JSON-ready), stored in the manifest."""

    def __post_init__(self) -> None:
        if not self.frames:
            raise VividZooError("a Gaussian sequence needs at least one frame")
        self.frames = [check_gaussians(g, f"frame {i}") for i, g in enumerate(self.frames)]
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise VividZooError(f"fps must be a positive number, got {self.fps}")


def turntable_frames(sequence_length: int) -> int:
    """Frames of the turntable video: whole loops of the sequence, at least :data:`TURNTABLE_MIN_FRAMES`."""
    return sequence_length * math.ceil(TURNTABLE_MIN_FRAMES / sequence_length)


def render_turntable(sequence: GaussianSequence, settings: TurntableSettings | None = None):
    """Yields the turntable's ``(size, size, 3)`` frames in [0, 1]: frame ``i`` shows the sequence's frame
    ``i mod F`` from azimuth ``360 i / n`` (one turn over the video)."""
    settings = settings or TurntableSettings()
    count = turntable_frames(len(sequence.frames))
    cameras = turntable(count, settings.elevation, settings.radius)
    for i, camera in enumerate(cameras):
        gaussians = sequence.frames[i % len(sequence.frames)]
        image = render(gaussians, camera, settings.size, settings.size, settings.background, settings.backend).image
        yield image.clamp(0, 1).cpu()


def save_gaussian_sequence(sequence: GaussianSequence, out_dir: str | Path, *,
                           turntable_settings: TurntableSettings | None = None,
                           preview: bool = True) -> dict[str, Path]:
    """Writes the PLYs, the manifest and (with ``preview``) the turntable into ``out_dir`` (made if missing).

    Returns the written paths: ``"manifest"``, ``"plys"`` (the folder), ``"turntable"``. Refuses, before writing
    anything, when one of the files is already there.
    """
    out = Path(out_dir)
    settings = turntable_settings or TurntableSettings()
    names = [ply_name(f) for f in range(len(sequence.frames))]
    targets = [MANIFEST_FILE, *names, *([TURNTABLE_MP4] if preview else [])]
    existing = [name for name in targets if (out / name).exists()]
    if existing:
        raise VividZooError(
            f"{out / existing[0]} already exists; choose a new output folder (nothing was overwritten)"
        )
    (out / PLY_FOLDER).mkdir(parents=True, exist_ok=True)
    kept = []
    for gaussians, name in zip(sequence.frames, names):
        write_ply(gaussians, out / name)
        kept.append(int(ply_columns(gaussians).shape[0]))
    written = {"plys": out / PLY_FOLDER}
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "fps": sequence.fps,
        "frames": len(sequence.frames),
        "files": names,
        "gaussians": kept,
        "ply_properties": list(PLY_PROPERTIES),
        "cameras": _cameras_json(sequence.cameras),
        "turntable": None,
        "info": sequence.info,
    }
    if preview:
        frames = turntable_frames(len(sequence.frames))
        written["turntable"] = write_mp4(out / TURNTABLE_MP4, render_turntable(sequence, settings), sequence.fps)
        manifest["turntable"] = {"file": TURNTABLE_MP4, "frames": frames, "size": settings.size,
                                 "elevation": settings.elevation, "radius": settings.radius,
                                 "background": list(settings.background)}
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    written["manifest"] = out / MANIFEST_FILE
    return written


def load_gaussian_sequence(folder: str | Path) -> GaussianSequence:
    """Reads a folder written by :func:`save_gaussian_sequence` (the Gaussians as their PLYs store them: pruned)."""
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise VividZooError(f"no {MANIFEST_FILE} in {folder}: not a saved Gaussian sequence") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise VividZooError(f"{path}: not readable JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise VividZooError(f"{path}: not a Gaussian sequence manifest (format must be '{MANIFEST_FORMAT}')")
    if manifest.get("version") != MANIFEST_VERSION:
        raise VividZooError(f"{path}: manifest version {manifest.get('version')} is not {MANIFEST_VERSION}")
    files = manifest.get("files")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise VividZooError(f"{path}: 'files' must be a non-empty list of PLY file names")
    frames = [read_ply(folder / name) for name in files]
    return GaussianSequence(frames, float(manifest.get("fps", DEFAULT_FPS)),
                            _cameras_from_json(manifest.get("cameras"), path), manifest.get("info") or {})


def _cameras_json(cameras: Sequence[Sequence[SplatCamera]] | None) -> dict | None:
    if not cameras:
        return None
    first = cameras[0][0]
    if any((c.fovy_degrees, c.znear, c.zfar) != (first.fovy_degrees, first.znear, first.zfar)
           for row in cameras for c in row):
        raise VividZooError("all cameras of a sequence must share field of view and near/far planes")
    return {
        "convention": CAMERA_CONVENTION,
        "fovy_degrees": first.fovy_degrees, "znear": first.znear, "zfar": first.zfar,
        "matrices": [[np.asarray(c.camera_to_world, dtype=np.float64).round(8).tolist() for c in row]
                     for row in cameras],
    }


def _cameras_from_json(data: dict | None, path: Path) -> list[list[SplatCamera]] | None:
    if data is None:
        return None
    try:
        optics = {key: float(data[key]) for key in ("fovy_degrees", "znear", "zfar")}
        rows = [[SplatCamera(np.array(m, dtype=np.float64).reshape(4, 4), **optics) for m in row]
                for row in data["matrices"]]
    except (KeyError, TypeError, ValueError) as error:
        raise VividZooError(f"{path}: bad 'cameras' entry ({error})") from None
    return rows

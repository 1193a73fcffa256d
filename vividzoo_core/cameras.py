"""Camera poses in MVDream's convention, for every view of every frame.

A camera sits on the unit sphere at elevation ``e`` and azimuth ``a`` (degrees, y up):
``p = (cos e sin a, sin e, cos e cos a)``, looks at the origin with up ``(0, 1, 0)``; its
camera-to-world matrix has columns ``[right, up, -forward]`` and translation ``p`` (OpenGL camera
axes), left-multiplied by the flip to Blender's z-up world. MVDream's camera embedding takes that
4x4 matrix flattened row-major (16 floats). The same matrices are what NeRF-style tools read from a
``transforms.json`` (OpenGL camera, Blender world), so exports need no conversion.

A :class:`CameraRig` holds ``(frames, views)`` matrices. A rig with one frame is static: it stands
for any number of frames.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import VividZooError
from .layout import VideoLayout

OPENGL_TO_BLENDER = np.array(
    [[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64
)
CAMERAS_FILE = "cameras.json"
"""The file name of a rig in our camera format, in a dataset object and beside a generated video."""
CAMERA_FORMAT = "vividzoo-cameras"
CAMERA_FORMAT_VERSION = 1
CONVENTION = (
    "MVDream camera-to-world: OpenGL camera axes (x right, y up, z back), Blender world (z up), "
    "unit distance, 4x4 row-major"
)
# Intrinsics written to transforms.json. MVDream fixes none; these match the rendering setup of
# the Vivid-ZOO training data (radius 2.2-2.6) and our toy dataset, so reconstructions are in scale.
THREESTUDIO_AZIMUTH_OFFSET = 90.0
"""Our azimuth minus threestudio's (Animate3D, MV-Video): its ``p = (cos e cos b, cos e sin b, sin e)`` in a z-up
world is our ``(cos e sin a, -cos e cos a, sin e)`` (Blender world) at ``a = b + 90``; both grow counter-clockwise
seen from above."""
DEFAULT_RADIUS = 2.4
DEFAULT_FOV_DEGREES = 40.0


def camera_to_world(elevation: Any, azimuth: Any) -> np.ndarray:
    """MVDream camera-to-world matrices for elevation/azimuth in degrees (any broadcastable shapes)."""
    elevation = np.asarray(elevation, dtype=np.float64)
    azimuth = np.asarray(azimuth, dtype=np.float64)
    if np.any(np.abs(elevation) >= 90.0):
        raise VividZooError(
            f"elevation must be strictly between -90 and 90 degrees (a camera straight above or below "
            f"has no defined 'up'), got {elevation.max() if elevation.max() >= 90 else elevation.min()}"
        )
    e, a = np.broadcast_arrays(np.radians(elevation), np.radians(azimuth))
    position = np.stack([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)], axis=-1)
    forward = -position / np.linalg.norm(position, axis=-1, keepdims=True)
    world_up = np.broadcast_to(np.array([0.0, 1.0, 0.0]), forward.shape)
    right = np.cross(forward, world_up)
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    up = np.cross(right, forward)
    up /= np.linalg.norm(up, axis=-1, keepdims=True)
    matrix = np.zeros(e.shape + (4, 4))
    matrix[..., :3, 0] = right
    matrix[..., :3, 1] = up
    matrix[..., :3, 2] = -forward
    matrix[..., :3, 3] = position
    matrix[..., 3, 3] = 1.0
    return OPENGL_TO_BLENDER @ matrix


def at_unit_distance(matrices: np.ndarray) -> np.ndarray:
    """A copy of camera-to-world matrices ``(..., 4, 4)`` with every position moved to unit distance."""
    matrices = np.array(matrices, dtype=np.float64)
    matrices[..., :3, 3] /= np.linalg.norm(matrices[..., :3, 3], axis=-1, keepdims=True)
    return matrices


@dataclass(frozen=True)
class CameraRig:
    """Camera-to-world matrices, shape ``(frames, views, 4, 4)``; angles when built from angles."""

    matrices: np.ndarray
    elevations: np.ndarray | None = None
    azimuths: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.matrices.ndim != 4 or self.matrices.shape[2:] != (4, 4) or 0 in self.matrices.shape:
            raise VividZooError(
                f"camera matrices must have shape (frames, views, 4, 4), got {tuple(self.matrices.shape)}"
            )

    @property
    def frames(self) -> int:
        return self.matrices.shape[0]

    @property
    def views(self) -> int:
        return self.matrices.shape[1]

    @property
    def is_static(self) -> bool:
        return self.frames == 1

    def for_layout(self, layout: VideoLayout) -> CameraRig:
        """This rig for a video of ``layout``: checks the view count, repeats a static rig over time."""
        if self.views != layout.views:
            raise VividZooError(
                f"the cameras have {self.views} views but the video has {layout.views}; "
                f"build the cameras with views={layout.views} or set views to {self.views}"
            )
        if self.frames == layout.frames:
            return self
        if not self.is_static:
            raise VividZooError(
                f"the camera trajectory has {self.frames} frames but the video has {layout.frames}; "
                f"build it with frames={layout.frames}, or use a static rig (one frame) for any length"
            )
        return CameraRig(
            np.repeat(self.matrices, layout.frames, axis=0),
            None if self.elevations is None else np.repeat(self.elevations, layout.frames, axis=0),
            None if self.azimuths is None else np.repeat(self.azimuths, layout.frames, axis=0),
        )

    def embedding_input(self) -> torch.Tensor:
        """``(frames * views, 16)`` float32 in layout order: what MVDream's camera MLP takes."""
        return torch.from_numpy(self.matrices.reshape(-1, 16).astype(np.float32))

    def to_json(self) -> dict[str, Any]:
        cameras = []
        for f in range(self.frames):
            row = []
            for v in range(self.views):
                entry: dict[str, Any] = {"matrix": _rounded(self.matrices[f, v])}
                if self.elevations is not None and self.azimuths is not None:
                    entry["elevation"] = float(self.elevations[f, v])
                    entry["azimuth"] = float(self.azimuths[f, v])
                row.append(entry)
            cameras.append(row)
        return {
            "format": CAMERA_FORMAT,
            "version": CAMERA_FORMAT_VERSION,
            "convention": CONVENTION,
            "views": self.views,
            "frames": self.frames,
            "cameras": cameras,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1))


def orbit(
    views: int = 4, elevation: float = 15.0, azimuth_start: float = 0.0, azimuth_span: float = 360.0
) -> CameraRig:
    """A static ring of ``views`` cameras at ``azimuth_start + i * azimuth_span / views``."""
    return moving_orbit(views, 1, elevation, azimuth_start, azimuth_span, turn=0.0)


def moving_orbit(
    views: int,
    frames: int,
    elevation: float = 15.0,
    azimuth_start: float = 0.0,
    azimuth_span: float = 360.0,
    turn: float = 360.0,
    elevation_end: float | None = None,
) -> CameraRig:
    """The ring of :func:`orbit` turning by ``turn`` degrees over the clip while the object moves.

    Frame ``f`` is rotated by ``turn * f / frames``, so a full turn loops seamlessly. The elevation
    goes linearly from ``elevation`` to ``elevation_end`` (default: constant).
    """
    VideoLayout(views, frames)
    view_offsets = azimuth_span * np.arange(views) / views
    frame_offsets = turn * np.arange(frames) / frames
    azimuths = azimuth_start + frame_offsets[:, None] + view_offsets[None, :]
    end = elevation if elevation_end is None else elevation_end
    ramp = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    elevations = np.broadcast_to((elevation + (end - elevation) * ramp)[:, None], azimuths.shape).copy()
    return CameraRig(camera_to_world(elevations, azimuths), elevations, azimuths)


def load_cameras(path: str | Path) -> CameraRig:
    """Reads our camera JSON, or a NeRF-style ``transforms.json`` (positions scaled to unit distance)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise VividZooError(f"camera file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise VividZooError(f"{path.name}: not readable JSON ({error}); expected a camera file") from None
    return cameras_from_json(data, source=str(path))


def cameras_from_json(data: Any, source: str = "camera JSON") -> CameraRig:
    """Parses our camera format, a transforms.json, or a bare ``[views][16]`` / ``[frames][views][16]`` list."""
    if isinstance(data, dict) and data.get("format") == CAMERA_FORMAT:
        rows = data.get("cameras")
        if not isinstance(rows, list) or not rows or not all(isinstance(r, list) and r for r in rows):
            raise VividZooError(f"{source}: 'cameras' must be a non-empty list of frames, each a list of views")
        if len({len(r) for r in rows}) != 1:
            raise VividZooError(
                f"{source}: every frame must list the same number of views, got {[len(r) for r in rows]}"
            )
        matrices = [[_matrix(c.get("matrix") if isinstance(c, dict) else None, f"{source} frame {f} view {v}")
                     for v, c in enumerate(r)] for f, r in enumerate(rows)]
        return CameraRig(np.array(matrices), *_angles(rows))
    if isinstance(data, dict) and isinstance(data.get("frames"), list):
        return _from_transforms(data, source)
    if isinstance(data, list):
        array = np.asarray(data, dtype=object)
        nested = array if array.ndim != 2 else array[None]
        return CameraRig(np.array([[_matrix(list(c), f"{source} [{f}][{v}]") for v, c in enumerate(r)]
                                   for f, r in enumerate(nested)]))
    raise VividZooError(
        f"{source}: not a camera file; expected {{\"format\": \"{CAMERA_FORMAT}\", ...}}, a transforms.json "
        f"with 'frames', or a list of 16-number camera-to-world matrices"
    )


def focal_length(size: float, fov_degrees: float = DEFAULT_FOV_DEGREES) -> float:
    """Focal length in pixels of a pinhole camera whose field of view spans ``size`` pixels."""
    return 0.5 * size / math.tan(0.5 * math.radians(fov_degrees))


def pinhole(camera_to_world_unit: np.ndarray, size: int, radius: float = DEFAULT_RADIUS,
            fov_degrees: float = DEFAULT_FOV_DEGREES) -> tuple[np.ndarray, np.ndarray, float]:
    """A unit-distance camera moved out to ``radius``: its position, rotation (camera to world) and focal length."""
    matrix = np.asarray(camera_to_world_unit, dtype=np.float64)
    return radius * matrix[:3, 3], matrix[:3, :3], focal_length(size, fov_degrees)


def project(
    point_world: Sequence[float] | np.ndarray,
    camera_to_world_unit: np.ndarray,
    size: int,
    radius: float = DEFAULT_RADIUS,
    fov_degrees: float = DEFAULT_FOV_DEGREES,
) -> tuple[Any, Any]:
    """Pixel ``(x, y)`` of a world point seen by the camera ``camera_to_world_unit`` moved out to ``radius``.

    ``point_world`` may be ``(..., 3)`` points: ``x`` and ``y`` then have shape ``(...)``. The points must
    lie in front of the camera (a point behind it lands on a meaningless pixel).
    """
    position, rotation, focal = pinhole(camera_to_world_unit, size, radius, fov_degrees)
    # Row vectors: v @ rotation is rotation.T @ v, world to camera axes.
    camera = (np.asarray(point_world, dtype=np.float64) - position) @ rotation
    depth = -camera[..., 2]
    return size / 2 + focal * camera[..., 0] / depth, size / 2 - focal * camera[..., 1] / depth


def transforms_json(
    rig: CameraRig,
    width: int,
    height: int,
    file_path: Callable[[int, int], str],
    radius: float = DEFAULT_RADIUS,
    fov_degrees: float = DEFAULT_FOV_DEGREES,
) -> dict[str, Any]:
    """A nerfstudio / instant-ngp style ``transforms.json`` with per-frame ``time`` in [0, 1].

    ``file_path(frame, view)`` names each image relative to the JSON file.
    """
    focal = focal_length(width, fov_degrees)
    frames = []
    for f in range(rig.frames):
        for v in range(rig.views):
            matrix = rig.matrices[f, v].copy()
            matrix[:3, 3] *= radius
            frames.append({
                "file_path": file_path(f, v),
                "transform_matrix": _rounded(matrix),
                "time": f / (rig.frames - 1) if rig.frames > 1 else 0.0,
                "frame_index": f,
                "view_index": v,
            })
    return {
        "camera_model": "OPENCV",
        "camera_angle_x": math.radians(fov_degrees),
        "fl_x": focal, "fl_y": focal, "cx": width / 2, "cy": height / 2, "w": width, "h": height,
        "frames": frames,
    }


def _from_transforms(data: dict[str, Any], source: str) -> CameraRig:
    entries = data["frames"]
    if not entries:
        raise VividZooError(f"{source}: 'frames' is empty")
    keyed = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise VividZooError(f"{source}: frames[{i}] is not an object")
        matrix = _matrix(entry.get("transform_matrix"), f"{source} frames[{i}].transform_matrix")
        distance = np.linalg.norm(matrix[:3, 3])
        if distance < 1e-6:
            raise VividZooError(
                f"{source}: frames[{i}] camera sits at the origin; it must look at the object from outside"
            )
        matrix[:3, 3] /= distance
        time = entry.get("frame_index", entry.get("time", 0.0))
        keyed.append((float(time), entry.get("view_index", i), matrix))
    times = sorted({t for t, _, _ in keyed})
    rows = [[m for t, _, m in sorted((e for e in keyed if e[0] == time), key=lambda e: e[1])] for time in times]
    if len({len(r) for r in rows}) != 1:
        raise VividZooError(
            f"{source}: every time step must have the same number of views, got {[len(r) for r in rows]}"
        )
    return CameraRig(np.array(rows))


def _matrix(value: Any, where: str) -> np.ndarray:
    try:
        matrix = np.asarray(value, dtype=np.float64).reshape(4, 4)
    except (TypeError, ValueError):
        raise VividZooError(f"{where}: expected a 4x4 matrix or 16 numbers, got {_short(value)}") from None
    if not np.all(np.isfinite(matrix)):
        raise VividZooError(f"{where}: the matrix has NaN or infinite entries")
    if not np.allclose(matrix[3], [0, 0, 0, 1], atol=1e-4):
        raise VividZooError(f"{where}: the last row must be [0, 0, 0, 1], got {matrix[3].tolist()}")
    rotation = matrix[:3, :3]
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-3):
        raise VividZooError(f"{where}: the 3x3 part is not a rotation (columns must be orthonormal)")
    return matrix


def _angles(rows: list[list[Any]]) -> tuple[np.ndarray | None, np.ndarray | None]:
    try:
        elevations = np.array([[float(c["elevation"]) for c in r] for r in rows])
        azimuths = np.array([[float(c["azimuth"]) for c in r] for r in rows])
    except (KeyError, TypeError, ValueError):
        return None, None
    return elevations, azimuths


def _rounded(matrix: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 8) + 0.0 for x in row] for row in matrix]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."

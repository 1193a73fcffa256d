"""A toy captioned multi-view video dataset: coloured primitives that move, ray-cast in numpy.

Each object is a sphere, cube or lying cylinder that bounces, circles, spins or grows and shrinks,
seen by a static ring of cameras (:func:`vividzoo_core.cameras.orbit`) at ``DEFAULT_RADIUS`` with a
``DEFAULT_FOV_DEGREES`` pinhole, so the images match ``cameras.json`` and ``transforms.json`` exactly.
Pixel coordinates are continuous: column ``j`` spans ``[j, j + 1)``, row 0 is the top of the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..cameras import CAMERAS_FILE, DEFAULT_FOV_DEGREES, DEFAULT_RADIUS, orbit, pinhole
from .format import CAPTION_FILE, frame_path, view_folder, view_video

PALETTE = {
    "red": (0.85, 0.12, 0.12),
    "orange": (0.95, 0.5, 0.1),
    "yellow": (0.92, 0.78, 0.1),
    "green": (0.15, 0.65, 0.2),
    "blue": (0.15, 0.3, 0.85),
    "purple": (0.55, 0.2, 0.7),
}
# Turning by this many degrees about the vertical axis brings the shape back onto itself.
SPIN_SYMMETRY = {"cube": 90.0, "cylinder": 180.0}
SHAPES = ("sphere", "cube", "cylinder")
MOTIONS = ("bouncing", "circling", "spinning", "growing and shrinking")
CYLINDER_RADIUS = 0.6  # of the unit cylinder: axis along x, half length 1
LIGHT = np.array([0.4, -0.5, 0.77]) / np.linalg.norm([0.4, -0.5, 0.77])  # Blender world, from above
AMBIENT = 0.45


@dataclass(frozen=True)
class Primitive:
    """A shape at ``centre`` (Blender world, z up) of half extent ``size``, turned ``spin`` degrees about z."""

    shape: str
    centre: tuple[float, float, float]
    size: float
    colour: tuple[float, float, float]
    spin: float = 0.0


def render(
    primitives: Sequence[Primitive],
    cameras: np.ndarray,
    size: int,
    radius: float = DEFAULT_RADIUS,
    fov_degrees: float = DEFAULT_FOV_DEGREES,
) -> np.ndarray:
    """``(views, size, size, 3)`` uint8 images of the primitives on white, one per unit camera matrix."""
    origins, directions = _rays(cameras, size, radius, fov_degrees)
    nearest = np.full(len(directions), np.inf)
    colours = np.ones((len(directions), 3))
    for primitive in primitives:
        distance, normals = _hit(primitive, origins, directions)
        closer = distance < nearest
        nearest[closer] = distance[closer]
        shade = AMBIENT + (1 - AMBIENT) * np.clip(normals[closer] @ LIGHT, 0.0, None)
        colours[closer] = shade[:, None] * np.asarray(primitive.colour)
    image = (colours.reshape(len(cameras), size, size, 3) * 255).round()
    return image.astype(np.uint8)


def write_object(
    object_dir: str | Path,
    frames: Sequence[Sequence[Primitive]],
    caption: str,
    views: int = 8,
    size: int = 64,
    elevation: float = 15.0,
    videos: bool = False,
) -> Path:
    """One object folder: ``frames[f]`` rendered by ``views`` cameras at azimuths ``360 * v / views``;
    each view a folder of PNG files, or with ``videos`` an mp4 file (as MV-Video has them)."""
    object_dir = Path(object_dir)
    rig = orbit(views, elevation)
    if videos:
        import torch

        from ..video import write_mp4

        images = np.stack([render(primitives, rig.matrices[0], size) for primitives in frames])  # frames, views
        for v in range(views):
            view_video(object_dir, v).parent.mkdir(parents=True, exist_ok=True)
            write_mp4(view_video(object_dir, v), (torch.from_numpy(image / 255.0) for image in images[:, v]))
    else:
        for v in range(views):
            view_folder(object_dir, v).mkdir(parents=True, exist_ok=True)
        for f, primitives in enumerate(frames):
            for v, image in enumerate(render(primitives, rig.matrices[0], size)):
                Image.fromarray(image).save(frame_path(object_dir, v, f))
    (object_dir / CAPTION_FILE).write_text(caption + "\n")
    rig.save(object_dir / CAMERAS_FILE)
    return object_dir


def make_toy_dataset(
    directory: str | Path,
    objects: int = 6,
    views: int = 8,
    frames: int = 24,
    size: int = 64,
    elevation: float = 15.0,
    seed: int = 0,
    videos: bool = False,
) -> list[Path]:
    """Writes ``toy_000``, ``toy_001``, ... in the layout of ``dataset_format``; the same seed, the same bytes.
    ``videos``: each view an mp4 file rather than a folder of PNG files."""
    rng = np.random.default_rng(seed)
    folders = []
    for index in range(objects):
        shape = str(rng.choice(SHAPES))
        colour = str(rng.choice(list(PALETTE)))
        motion = str(rng.choice([m for m in MOTIONS if m != "spinning" or shape in SPIN_SYMMETRY]))
        extent, yaw = rng.uniform(0.25, 0.35), rng.uniform(0.0, 90.0)
        clip = [[_animated(shape, PALETTE[colour], motion, extent, yaw, f, frames)] for f in range(frames)]
        article = "an" if colour[0] in "aeiou" else "a"
        caption = f"{article} {colour} {shape} {motion}, 3d asset"
        folders.append(write_object(Path(directory) / f"toy_{index:03d}", clip, caption, views, size, elevation,
                                    videos))
    return folders


def _animated(shape: str, colour: tuple[float, float, float], motion: str, extent: float, yaw: float,
              frame: int, frames: int) -> Primitive:
    # A quarter-frame offset keeps motions that are symmetric in time from repeating a pose in consecutive frames.
    phase = (frame + 0.25) / frames
    angle = 2 * math.pi * phase
    centre, spin = (0.0, 0.0, 0.0), yaw
    if motion == "bouncing":
        centre = (0.0, 0.0, -0.35 + 0.6 * abs(math.sin(math.pi * phase)))
    elif motion == "circling":
        centre = (0.4 * math.cos(angle), 0.4 * math.sin(angle), 0.0)
    elif motion == "spinning":
        spin += SPIN_SYMMETRY[shape] * phase
    else:
        extent *= 1 + 0.35 * math.sin(angle)
    return Primitive(shape, centre, extent, colour, spin)


def _rays(cameras: np.ndarray, size: int, radius: float, fov_degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel (views, rows, columns flattened): camera positions and unit directions through pixel centres."""
    centres = np.arange(size) + 0.5 - size / 2
    rows, columns = np.meshgrid(centres, centres, indexing="ij")
    origins, directions = [], []
    for matrix in cameras:
        position, rotation, focal = pinhole(matrix, size, radius, fov_degrees)
        camera = np.stack([columns / focal, -rows / focal, -np.ones_like(rows)], axis=-1).reshape(-1, 3)
        directions.append(camera @ rotation.T)
        origins.append(np.broadcast_to(position, camera.shape))
    directions = np.concatenate(directions)
    return np.concatenate(origins), directions / np.linalg.norm(directions, axis=-1, keepdims=True)


def _hit(primitive: Primitive, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray distances (inf on a miss) and world normals, found on the unit shape in the primitive's frame."""
    turn = math.radians(primitive.spin)
    rotation = np.array([[math.cos(turn), -math.sin(turn), 0.0], [math.sin(turn), math.cos(turn), 0.0], [0, 0, 1]])
    # Row vectors: v @ rotation is rotation.T @ v, world to local. Scaling both keeps the ray parameter t.
    local_origins = (origins - np.asarray(primitive.centre)) @ rotation / primitive.size
    local_directions = directions @ rotation / primitive.size
    with np.errstate(divide="ignore", invalid="ignore"):
        distance, normals = _UNIT_SHAPES[primitive.shape](local_origins, local_directions)
    distance = np.where(distance > 0, distance, np.inf)
    normals = normals @ rotation.T
    return distance, normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)


def _unit_sphere(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = _nearer_root((d * d).sum(-1), (o * d).sum(-1), (o * o).sum(-1) - 1)
    return t, o + np.nan_to_num(t, posinf=0.0)[:, None] * d


def _unit_cube(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.where(d == 0, 1e-12, d)
    low, high = (-1 - o) / d, (1 - o) / d
    entry = np.minimum(low, high)
    near, far = entry.max(-1), np.maximum(low, high).min(-1)
    axis = entry.argmax(-1)
    normals = np.zeros_like(o)
    normals[np.arange(len(o)), axis] = -np.sign(d[np.arange(len(o)), axis])
    return np.where(near <= far, near, np.inf), normals


def _unit_cylinder(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    across_o, across_d = o[:, 1:], d[:, 1:]
    side = _nearer_root((across_d ** 2).sum(-1), (across_o * across_d).sum(-1),
                        (across_o ** 2).sum(-1) - CYLINDER_RADIUS ** 2)
    side = np.where(np.abs(o[:, 0] + side * d[:, 0]) <= 1, side, np.inf)
    cap = np.minimum((-1 - o[:, 0]) / d[:, 0], (1 - o[:, 0]) / d[:, 0])
    cap_point = across_o + np.nan_to_num(cap, posinf=0.0, neginf=0.0)[:, None] * across_d
    cap = np.where((cap > 0) & ((cap_point ** 2).sum(-1) <= CYLINDER_RADIUS ** 2), cap, np.inf)
    on_side = side < cap
    t = np.minimum(side, cap)
    point = o + np.nan_to_num(t, posinf=0.0)[:, None] * d
    normals = np.where(on_side[:, None], point * [0.0, 1.0, 1.0], [1.0, 0.0, 0.0] * np.sign(point))
    return t, normals


def _nearer_root(a: np.ndarray, half_b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The smaller solution of ``a t^2 + 2 half_b t + c = 0``; inf where there is none."""
    discriminant = half_b ** 2 - a * c
    return np.where(discriminant >= 0, (-half_b - np.sqrt(np.maximum(discriminant, 0.0))) / a, np.inf)


_UNIT_SHAPES = {"sphere": _unit_sphere, "cube": _unit_cube, "cylinder": _unit_cylinder}

"""A picture of camera poses around the object: one image per frame of a rig (PIL, no GPU)."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw

from .cameras import CameraRig, camera_to_world

# The preview's own viewpoint, looking down at the scene from above and to the side.
EYE_ELEVATION, EYE_AZIMUTH, EYE_DISTANCE = 30.0, 35.0, 4.2
FRUSTUM_DEPTH, FRUSTUM_HALF = 0.28, 0.14


def view_colour(view: int, views: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(view / max(views, 1), 0.75, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def _projector(size: int):
    eye = camera_to_world(EYE_ELEVATION, EYE_AZIMUTH)
    eye[:3, 3] *= EYE_DISTANCE
    world_to_eye = np.linalg.inv(eye)
    focal = size * 1.5

    def project(points: np.ndarray) -> np.ndarray:
        homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ world_to_eye.T
        depth = -homogeneous[:, 2:3]
        return np.concatenate([focal * homogeneous[:, :1] / depth, -focal * homogeneous[:, 1:2] / depth], 1) + size / 2

    return project


def _line(draw: ImageDraw.ImageDraw, points: np.ndarray, colour, width: int = 2) -> None:
    draw.line([tuple(p) for p in points], fill=colour, width=width)


def draw_rig(rig: CameraRig, size: int = 512) -> list[Image.Image]:
    """One RGB image per frame: the unit orbit, the object at the centre, each view's camera frustum."""
    project = _projector(size)
    circle = np.linspace(0, 2 * np.pi, 73)
    ground = np.stack([np.cos(circle), np.sin(circle), np.zeros_like(circle)], 1)  # Blender world: z up
    cube = np.array([[x, y, z] for x in (-0.2, 0.2) for y in (-0.2, 0.2) for z in (-0.2, 0.2)])
    edges = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
    corners = np.array([[sx * FRUSTUM_HALF, sy * FRUSTUM_HALF, -FRUSTUM_DEPTH] for sx, sy in
                        ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    images = []
    for frame in range(rig.frames):
        image = Image.new("RGB", (size, size), (24, 24, 28))
        draw = ImageDraw.Draw(image)
        _line(draw, project(ground), (70, 70, 80), 1)
        projected_cube = project(cube)
        for a, b in edges:
            _line(draw, projected_cube[[a, b]], (200, 200, 200), 2)
        for view in range(rig.views):
            matrix = rig.matrices[frame, view]
            centre = matrix[:3, 3]
            world_corners = corners @ matrix[:3, :3].T + centre
            colour = view_colour(view, rig.views)
            _line(draw, project(np.stack([centre, np.zeros(3)])), tuple(c // 3 for c in colour), 1)
            tip, base = project(centre[None])[0], project(world_corners)
            for corner in base:
                _line(draw, np.stack([tip, corner]), colour)
            _line(draw, np.concatenate([base, base[:1]]), colour)
            draw.text(tuple(tip + 6), f"v{view}", fill=colour)
        draw.text((8, 8), f"{rig.views} views" + (f"  frame {frame + 1}/{rig.frames}" if rig.frames > 1 else ""),
                  fill=(220, 220, 220))
        images.append(image)
    return images

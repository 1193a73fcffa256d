"""A picture that checks an object's cameras against its frames: where ``cameras.json`` puts the world
origin (the object centre) and the world up axis, drawn over one frame of every view.

If the cameras are right, the red dot sits on the object's centre in every view and the green line
points up along the object's vertical axis; a wrong azimuth convention shows as the dot and line
drifting or the views looking at the object from the wrong side.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..cameras import DEFAULT_FOV_DEGREES, DEFAULT_RADIUS, project
from ..errors import VividZooError
from .frames import prepare_image
from .reader import read_object

UP_AXIS_LENGTH = 0.5  # world units, from the origin along +z (Blender world)
COLUMNS = 4


def camera_overlay(object_dir: Path, size: int = 256, frame: int = 0, radius: float = DEFAULT_RADIUS,
                   fov_degrees: float = DEFAULT_FOV_DEGREES) -> Image.Image:
    """A grid of every view's frame ``frame`` (centre-cropped to ``size``) with the projected centre and up axis."""
    video, issues = read_object(object_dir, views=1, frames_needed=frame + 1)
    if video is None:
        raise VividZooError(f"{object_dir}: cannot draw its cameras: {'; '.join(issues)}")
    if frame >= video.frames:
        raise VividZooError(f"{object_dir.name} has {video.frames} frames; frame {frame} does not exist")
    row = frame if video.cameras.frames > 1 else 0
    tiles = []
    for view, source in enumerate(video.sources):
        pixels = prepare_image(source.read([frame])[0], size)
        tile = Image.fromarray(((pixels.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8))
        draw = ImageDraw.Draw(tile)
        camera = video.cameras.matrices[row, view].copy()
        camera[:3, 3] /= np.linalg.norm(camera[:3, 3])
        centre = project((0.0, 0.0, 0.0), camera, size, radius, fov_degrees)
        top = project((0.0, 0.0, UP_AXIS_LENGTH), camera, size, radius, fov_degrees)
        draw.line([centre, top], fill=(0, 170, 0), width=max(1, size // 128))
        dot = max(2, size // 64)
        draw.ellipse([centre[0] - dot, centre[1] - dot, centre[0] + dot, centre[1] + dot], fill=(220, 0, 0))
        draw.text((4, 4), f"view {view}", fill=(0, 0, 0))
        tiles.append(tile)
    columns = min(COLUMNS, len(tiles))
    grid = Image.new("RGB", (columns * size, math.ceil(len(tiles) / columns) * size), (255, 255, 255))
    for index, tile in enumerate(tiles):
        grid.paste(tile, ((index % columns) * size, (index // columns) * size))
    return grid

"""A picture that checks an object's cameras against its frames, drawn over one frame of every view.

In cyan, the outline of the visual hull carved from every view's silhouette through ``cameras.json``
(:mod:`.camera_check`), projected back into the view; in magenta, the part of the view's silhouette
that the hull does not cover, which the other views' cameras cut away. With right cameras the outline
follows the object in every view and nothing is magenta. Red dot and green line: where the cameras put
the world origin (the object centre) and the world up axis. Each view is labelled with its azimuth,
elevation and covered share: the view at azimuth 0 should show the object's front, which no check from
images alone can tell (turning every camera by one angle changes no silhouette's agreement).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..cameras import CameraRig, at_unit_distance, project
from ..errors import VividZooError
from .camera_check import camera_settings, check_frame
from .frames import prepare_image
from .reader import read_object, view_azimuths

UP_AXIS_LENGTH = 0.5  # world units, from the origin along +z (Blender world)
COLUMNS = 4
HULL_COLOUR = (0, 170, 220)
UNCOVERED_COLOUR = (230, 0, 200)


def camera_overlay(object_dir: Path, size: int = 256, frame: int = 0, radius: float | None = None,
                   fov_degrees: float | None = None) -> Image.Image:
    """A grid of every view's frame ``frame`` (centre-cropped to ``size``) with the hull, centre and up axis.

    ``radius`` and ``fov_degrees`` default to the object's (:func:`.camera_check.camera_settings`).
    """
    video, issues = read_object(object_dir, views=1, frames_needed=frame + 1)
    if video is None:
        raise VividZooError(f"{object_dir}: cannot draw its cameras: {'; '.join(issues)}")
    if frame >= video.frames:
        raise VividZooError(f"{object_dir.name} has {video.frames} frames; frame {frame} does not exist")
    default_radius, default_fov = camera_settings(object_dir)
    radius, fov_degrees = radius or default_radius, fov_degrees or default_fov
    cameras = at_unit_distance(video.cameras.matrices[frame if video.cameras.frames > 1 else 0])
    azimuths = view_azimuths(CameraRig(cameras[None]))
    elevations = np.degrees(np.arcsin(np.clip(cameras[:, 2, 3], -1.0, 1.0)))  # Blender world: z up
    check = check_frame(video, frame, radius, fov_degrees)
    tiles = []
    for view, source in enumerate(video.sources):
        pixels = prepare_image(source.read([frame])[0], size)
        tile = Image.fromarray(((pixels.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8))
        _draw_hull(tile, check.silhouettes[view], check.hull[view])
        draw = ImageDraw.Draw(tile)
        centre = project((0.0, 0.0, 0.0), cameras[view], size, radius, fov_degrees)
        top = project((0.0, 0.0, UP_AXIS_LENGTH), cameras[view], size, radius, fov_degrees)
        draw.line([centre, top], fill=(0, 170, 0), width=max(1, size // 128))
        dot = max(2, size // 64)
        draw.ellipse([centre[0] - dot, centre[1] - dot, centre[0] + dot, centre[1] + dot], fill=(220, 0, 0))
        draw.text((4, 4), f"view {view} az {azimuths[view]:.1f} el {elevations[view]:.1f}\n"
                          f"covered {check.coverage[view]:.2f}", fill=(0, 0, 0))
        tiles.append(tile)
    columns = min(COLUMNS, len(tiles))
    grid = Image.new("RGB", (columns * size, math.ceil(len(tiles) / columns) * size), (255, 255, 255))
    for index, tile in enumerate(tiles):
        grid.paste(tile, ((index % columns) * size, (index // columns) * size))
    return grid


def _draw_hull(tile: Image.Image, silhouette: np.ndarray, hull: np.ndarray) -> None:
    """Half-tints the silhouette the hull leaves uncovered and outlines the hull, both scaled to the tile."""
    def scaled(mask: np.ndarray) -> Image.Image:
        return Image.fromarray(mask.astype(np.uint8) * 255).resize(tile.size, Image.Resampling.NEAREST)

    uncovered = scaled(silhouette & ~hull)
    tile.paste(Image.blend(tile, Image.new("RGB", tile.size, UNCOVERED_COLOUR), 0.5), mask=uncovered)
    inside = scaled(hull)
    outline = np.asarray(inside) & ~np.asarray(inside.filter(ImageFilter.MinFilter(3)))
    tile.paste(Image.new("RGB", tile.size, HULL_COLOUR), mask=Image.fromarray(outline))

"""Do an object's cameras agree with its frames? A check from the frames alone, without a 3D model.

Every view's silhouette (its alpha; without transparency, the pixels unlike the colour of the image
border, as on MV-Video's plain backgrounds) is cast into space through that view's camera in
``cameras.json``. The voxels inside every silhouette form the visual hull, which is projected back
into every view. With right cameras the hull covers each silhouette. A camera that looks from the
wrong place cuts away what the other views see, so part of their silhouettes stays uncovered; a view
rendered from nearer than the others shows more than the others leave of the hull. An object's score
is the share of its worst view's silhouette that the hull covers.

On an object that looks different from every side it catches: one view's azimuth off by 22.5 degrees
or more, azimuths running the wrong way, a negated elevation, one view rendered from another distance
(measured values in the tests, ``tests/test_camera_check.py``), while frames made with a field of view
10 degrees off the one assumed lose at most 0.03 of the score. No check from images alone can see a
change of every camera that equals moving the object instead: turning every azimuth by one angle turns
the hull with them, and moving every camera by one factor scales it, so both score exactly as the
right cameras do. Training cannot see the second either (it reads the cameras at unit distance), but
it does see the first (MVDream's azimuth 0 looks at the object's front): ``camera-overlay`` labels
every view with its azimuth for a person to judge. A symmetric object (a ball at the centre, a cube
turning about its axis) passes whatever its azimuths: a low score is evidence, a high one is evidence
only for an object without symmetries.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from ..cameras import DEFAULT_FOV_DEGREES, DEFAULT_RADIUS, at_unit_distance, project
from ..errors import VividZooError
from .frames import square
from .reader import VideoObject
from .render.settings import RenderSettings
from .render.worker import RENDER_FILE

SILHOUETTE_SIZE = 128
"""Pixels per side of the silhouettes (fewer for smaller frames); the cube carved has as many voxels per
side, so a voxel spans about a pixel."""
BACKGROUND_TOLERANCE = 32
"""Without alpha, a pixel is the object's when a channel differs from the border colour by more (of 255)."""
MIN_COVERAGE = 0.95
"""An object whose worst view has less of its silhouette covered by the hull is a problem. Right
cameras cover 0.99 to 1 of every view in the tests (PNG and mp4 frames); one view's azimuth 22.5
degrees off among 16 leaves about 0.92."""


@dataclass(frozen=True)
class HullCheck:
    """One frame of an object: each view's silhouette and the visual hull of all views projected into it."""

    silhouettes: np.ndarray
    """``(views, size, size)`` bool, ``size`` at most :data:`SILHOUETTE_SIZE`."""
    hull: np.ndarray
    """Same shape: the pixels the hull covers."""

    @property
    def coverage(self) -> np.ndarray:
        """Per view, the share of the silhouette the hull covers (1 for an empty silhouette)."""
        area = self.silhouettes.sum((1, 2))
        return np.where(area > 0, (self.hull & self.silhouettes).sum((1, 2)) / np.maximum(area, 1), 1.0)


@dataclass(frozen=True)
class CameraAgreement:
    """How well one object's cameras agree with its silhouettes."""

    directory: Path
    coverage: np.ndarray
    """:attr:`HullCheck.coverage` of each view."""

    @property
    def score(self) -> float:
        """The worst view's coverage: every view must agree with the others."""
        return float(self.coverage.min())

    @property
    def worst_view(self) -> int:
        return int(self.coverage.argmin())

    def problem(self) -> str | None:
        if self.score >= MIN_COVERAGE:
            return None
        return (f"{self.directory.name}: its cameras disagree with its frames (camera check {self.score:.2f} < "
                f"{MIN_COVERAGE}, worst view {self.worst_view:03d}): a wrong azimuth, direction, elevation or "
                f"distance, or an object that cannot be told from its background; `vividzoo dataset "
                f"camera-overlay {self.directory} --out overlay.png` shows where")


def camera_settings(object_dir: Path) -> tuple[float, float]:
    """``(radius, fov in degrees)`` the frames were made with: the object's ``render.json`` when
    ``dataset render`` wrote one, otherwise the defaults the toy data and the MV-Video import assume."""
    record = object_dir / RENDER_FILE
    if not record.is_file():
        return DEFAULT_RADIUS, DEFAULT_FOV_DEGREES
    try:
        settings = RenderSettings.from_json(json.loads(record.read_text(encoding="utf-8"))["settings"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise VividZooError(f"{record}: not a render record of `dataset render` ({type(error).__name__}: {error}); "
                            f"render the object again or remove the file") from None
    return settings.radius, settings.fov_degrees


def silhouette(image: Image.Image, size: int = SILHOUETTE_SIZE) -> np.ndarray:
    """``(size, size)`` bool, resized and cropped as training images are: the object's pixels.

    Holes stay: a real one (a handle) carves nothing the other views see, and filling a background
    coloured patch of the object would fill the real ones too.
    """
    pixels = np.asarray(image.convert("RGBA"))
    alpha = pixels[..., 3]
    if alpha.min() < 255:
        mask = alpha >= 128
    else:
        colours = pixels[..., :3].astype(np.int16)
        border = np.concatenate([colours[0], colours[-1], colours[:, 0], colours[:, -1]])
        mask = np.abs(colours - np.median(border, axis=0)).max(-1) > BACKGROUND_TOLERANCE
    return np.asarray(square(Image.fromarray(mask.astype(np.uint8) * 255), size)) >= 128


def visual_hull(silhouettes: np.ndarray, cameras: np.ndarray, radius: float = DEFAULT_RADIUS,
                fov_degrees: float = DEFAULT_FOV_DEGREES) -> tuple[np.ndarray, float]:
    """``(grid, grid, grid)`` bool with ``grid`` the silhouette size: the voxels whose centre
    projects inside every silhouette grown by a pixel (a pixel of blur or aliasing must not carve) or
    outside the view's image (no evidence against it), inside at least one, and the voxel edge in
    world units.

    The cube carved reaches the image edges at the centre's distance, capped at half the camera
    distance so that every camera sees all of it from the outside. Voxel ``(i, j, k)`` is centred at
    ``(i + 0.5, j + 0.5, k + 0.5) * edge - half`` on world ``(x, y, z)``. A carve at half the
    resolution first (voxels of two edges, one per 2x2x2 children) leaves only the parents whose
    children can stay.
    """
    grid = silhouettes.shape[-1]
    half = radius * min(math.tan(math.radians(fov_degrees) / 2), 0.5)
    edge, coarse = 2 * half / grid, (grid + 1) // 2
    # The farthest a child's centre (half a fine voxel off its parent's on each axis) lands from its
    # parent's, in pixels: moved across the view at the depth of the cube's corner nearest to a camera;
    # a move along the depth shifts a point at the image's corner by up to sqrt(2) tan(fov / 2) as much.
    nearest = cameras[0][:3, 3] * math.sqrt(3) * half
    across = nearest + cameras[0][:3, 0] * math.sqrt(3) / 2 * edge
    reach = math.dist(*(project(point, cameras[0], grid, radius, fov_degrees) for point in (nearest, across)))
    reach *= math.sqrt(1 + 2 * math.tan(math.radians(fov_degrees) / 2) ** 2)
    parents, _ = _carve(np.arange(coarse ** 3), coarse, 2 * edge, half, silhouettes, cameras, 1 + math.ceil(reach),
                        radius, fov_degrees)
    parent = np.stack(np.unravel_index(parents, (coarse,) * 3), -1)
    children = (2 * parent[:, None] + np.stack(np.unravel_index(np.arange(8), (2, 2, 2)), -1)).reshape(-1, 3)
    children = np.ravel_multi_index(children[(children < grid).all(-1)].T, (grid,) * 3)
    kept, seen = _carve(children, grid, edge, half, silhouettes, cameras, 1, radius, fov_degrees)
    occupied = np.zeros(grid ** 3, dtype=bool)
    occupied[kept[seen]] = True  # what no view's image holds is no part of what the silhouettes show
    return occupied.reshape(grid, grid, grid), edge


def hull_views(occupied: np.ndarray, edge: float, cameras: np.ndarray, size: int, radius: float = DEFAULT_RADIUS,
               fov_degrees: float = DEFAULT_FOV_DEGREES) -> np.ndarray:
    """``(views, size, size)`` bool: the pixels the voxels cover, each drawn as its 8 sub-voxel centres.

    Only voxels on the surface are drawn: every ray through the solid crosses its surface.
    """
    padded = np.pad(occupied, 1)
    inner = occupied.copy()
    for axis in range(3):
        for step in (1, -1):
            inner &= np.roll(padded, step, axis)[1:-1, 1:-1, 1:-1]
    surface = np.flatnonzero(occupied & ~inner)
    corners = np.stack(np.meshgrid(*[[-0.25, 0.25]] * 3, indexing="ij"), -1).reshape(-1, 3) * edge
    samples = (_centres(surface, occupied.shape[0], edge, occupied.shape[0] * edge / 2)[:, None] + corners)
    samples = samples.reshape(-1, 3)
    masks = np.zeros((len(cameras), size, size), dtype=bool)
    for mask, camera in zip(masks, cameras, strict=True):
        column, row, seen = _pixels(samples, camera, size, radius, fov_degrees)
        mask[row[seen], column[seen]] = True
    return masks


def hull_check(silhouettes: np.ndarray, cameras: np.ndarray, radius: float = DEFAULT_RADIUS,
               fov_degrees: float = DEFAULT_FOV_DEGREES) -> HullCheck:
    """The hull carved from ``silhouettes`` through unit-distance ``cameras`` ``(views, 4, 4)``, seen by each."""
    occupied, edge = visual_hull(silhouettes, cameras, radius, fov_degrees)
    return HullCheck(silhouettes, hull_views(occupied, edge, cameras, silhouettes.shape[-1], radius, fov_degrees))


def check_frame(video: VideoObject, frame: int = 0, radius: float | None = None,
                fov_degrees: float | None = None) -> HullCheck:
    """:func:`hull_check` of ``video`` at ``frame``; radius and field of view from :func:`camera_settings`
    unless given."""
    default_radius, default_fov = camera_settings(video.directory)
    images = [source.read([frame])[0] for source in video.sources]
    # Never finer than the frames: the pixel of tolerance must be a pixel of the frames.
    size = min(SILHOUETTE_SIZE, *(min(image.size) for image in images))
    silhouettes = np.stack([silhouette(image, size) for image in images])
    cameras = at_unit_distance(video.cameras.matrices[frame if video.cameras.frames > 1 else 0])
    return hull_check(silhouettes, cameras, radius or default_radius, fov_degrees or default_fov)


def check_objects(objects: list[VideoObject],
                  on_progress: Callable[[int, int], None] = lambda done, total: None) -> list[CameraAgreement]:
    """The first frame of every object with two or more views (one view agrees with anything)."""
    checked = [video for video in objects if video.views > 1]
    results = []
    with ThreadPoolExecutor() as pool:
        for done, found in enumerate(pool.map(check_frame, checked), 1):
            results.append(CameraAgreement(checked[done - 1].directory, found.coverage))
            on_progress(done, len(checked))
    return results


def summary(agreements: list[CameraAgreement], shown: int = 10) -> str:
    """One line: the lowest scores first, all of them in a small dataset."""
    if not agreements:
        return "camera check: no object with two or more views"
    ranked = sorted(agreements, key=lambda agreement: agreement.score)
    lowest = ", ".join(f"{agreement.directory.name} {agreement.score:.2f}" for agreement in ranked[:shown])
    more = f", and {len(ranked) - shown} more" if len(ranked) > shown else ""
    return (f"camera check (share of each view's silhouette covered by the visual hull of all views, worst "
            f"view; below {MIN_COVERAGE} is a problem): {lowest}{more}")


def _carve(voxels: np.ndarray, grid: int, edge: float, half: float, silhouettes: np.ndarray, cameras: np.ndarray,
           growth: int, radius: float, fov_degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The flat indices among ``voxels`` kept by every silhouette grown by ``growth`` pixels (a voxel
    outside a view's image is no evidence against it), and whether some view's image holds each."""
    centres = _centres(voxels, grid, edge, half)
    seen = np.zeros(len(voxels), dtype=bool)
    for mask, camera in zip(silhouettes, cameras, strict=True):
        grown = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(2 * growth + 1)))
        column, row, in_image = _pixels(centres, camera, mask.shape[0], radius, fov_degrees)
        kept = ~in_image
        kept[in_image] = grown[row[in_image], column[in_image]] > 0
        seen |= in_image
        voxels, centres, seen = voxels[kept], centres[kept], seen[kept]
    return voxels, seen


def _centres(indices: np.ndarray, grid: int, edge: float, half: float) -> np.ndarray:
    """World centres ``(M, 3)`` of the voxels at flat ``indices`` of a ``(grid, grid, grid)`` array from ``-half``."""
    return (np.stack(np.unravel_index(indices, (grid,) * 3), -1) + 0.5) * edge - half


def _pixels(points: np.ndarray, camera: np.ndarray, size: int, radius: float,
            fov_degrees: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column, row (column ``j`` spans ``[j, j + 1)``) and whether the point falls inside the image."""
    x, y = project(points, camera, size, radius, fov_degrees)
    column, row = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    return column, row, (column >= 0) & (column < size) & (row >= 0) & (row < size)

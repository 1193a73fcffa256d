"""The camera check: the visual hull carved through cameras.json covers every view's silhouette when the
cameras are right, and leaves part of one uncovered when they are wrong.

The object is a toy animal without symmetries (a body, a raised head, four legs, a tail, off the
vertical axis), rendered by the toy renderer through 16 cameras 22.5 degrees apart at elevation 20
(MV-Video's ring) at 128 px, the check's own resolution. Measured scores (worst view's covered share):
right cameras 1.00; view 1's azimuth 22.5 off 0.92, 90 off 0.64; azimuths reversed 0.59; elevation
negated 0.57, in view 3 only 0.82; view 2 rendered from 2.0 instead of 2.4 0.77, from 2.8 0.93.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vividzoo_core.cameras import (
    CAMERAS_FILE,
    DEFAULT_FOV_DEGREES,
    DEFAULT_RADIUS,
    CameraRig,
    camera_to_world,
    load_cameras,
    project,
)
from vividzoo_core.cli import main
from vividzoo_core.data.camera_check import (
    MIN_COVERAGE,
    CameraAgreement,
    camera_settings,
    check_frame,
    hull_check,
    silhouette,
    visual_hull,
)
from vividzoo_core.data.format import frame_path
from vividzoo_core.data.overlay import HULL_COLOUR, camera_overlay
from vividzoo_core.data.reader import read_object
from vividzoo_core.data.render.settings import RenderSettings
from vividzoo_core.data.render.worker import RENDER_FILE
from vividzoo_core.data.toy import Primitive, render, write_object
from vividzoo_core.errors import VividZooError

VIEWS, SIZE, ELEVATION = 16, 128, 20.0
AZIMUTHS = 360.0 * np.arange(VIEWS) / VIEWS
BROWN, DARK = (0.55, 0.35, 0.15), (0.3, 0.2, 0.1)


def animal(scale: float = 1.0) -> list[Primitive]:
    parts = [("cylinder", (0.0, 0.0, 0.05), 0.32, BROWN, 0.0), ("sphere", (0.38, 0.0, 0.3), 0.14, BROWN, 0.0),
             ("cube", (0.22, 0.1, -0.3), 0.05, BROWN, 0.0), ("cube", (0.22, -0.1, -0.3), 0.05, BROWN, 0.0),
             ("cube", (-0.22, 0.1, -0.3), 0.05, BROWN, 0.0), ("cube", (-0.22, -0.1, -0.3), 0.05, BROWN, 0.0),
             ("cylinder", (-0.42, 0.0, 0.15), 0.1, DARK, 30.0)]
    return [Primitive(shape, tuple(scale * c for c in centre), scale * size, colour, spin)
            for shape, centre, size, colour, spin in parts]


@pytest.fixture(scope="module")
def right(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One frame of the animal seen by the right cameras, PNG on white (no alpha: silhouettes from the background)."""
    return write_object(tmp_path_factory.mktemp("right") / "animal", [animal()], "a toy animal", VIEWS, SIZE, ELEVATION)


def with_cameras(source: Path, folder: Path, elevations: np.ndarray, azimuths: np.ndarray) -> Path:
    """A copy of ``source`` whose cameras.json holds these angles instead."""
    shutil.copytree(source, folder)
    CameraRig(camera_to_world(elevations, azimuths)[None], elevations[None], azimuths[None]).save(folder / CAMERAS_FILE)
    return folder


def agreement(folder: Path) -> CameraAgreement:
    video, issues = read_object(folder, views=1, frames_needed=1)
    assert video is not None, issues
    return CameraAgreement(folder, check_frame(video).coverage)


def shifted(view: int, degrees: float) -> np.ndarray:
    azimuths = AZIMUTHS.copy()
    azimuths[view] += degrees
    return azimuths


def test_right_cameras_cover_every_view(right):
    found = agreement(right)
    assert found.coverage.shape == (VIEWS,)
    assert found.score > 0.99 and found.problem() is None, found.coverage


WRONG = {
    "view 1 azimuth 22.5 off": (np.full(VIEWS, ELEVATION), shifted(1, 22.5)),
    "view 1 azimuth 90 off": (np.full(VIEWS, ELEVATION), shifted(1, 90.0)),
    "azimuths reversed": (np.full(VIEWS, ELEVATION), -AZIMUTHS),
    "elevation negated": (np.full(VIEWS, -ELEVATION), AZIMUTHS),
    "view 3 elevation negated": (np.where(np.arange(VIEWS) == 3, -ELEVATION, ELEVATION), AZIMUTHS),
}


@pytest.mark.parametrize("how", WRONG)
def test_wrong_cameras_are_a_problem(right, tmp_path, how):
    found = agreement(with_cameras(right, tmp_path / "animal", *WRONG[how]))
    assert found.score < MIN_COVERAGE - 0.02, (how, found.coverage)
    assert found.problem().startswith(f"animal: its cameras disagree with its frames (camera check {found.score:.2f}")


@pytest.mark.parametrize("radius", [2.0, 2.8])
def test_a_view_rendered_from_another_distance_is_a_problem(right, tmp_path, radius):
    """The harmful wrong distance: one view's frames from nearer or farther than the others'."""
    folder = shutil.copytree(right, tmp_path / "animal")
    image = render(animal(), load_cameras(folder / CAMERAS_FILE).matrices[0, 2:3], SIZE, radius=radius)[0]
    Image.fromarray(image).save(frame_path(folder, 2, 0))
    found = agreement(folder)
    assert found.score < MIN_COVERAGE - 0.02, found.coverage
    if radius < DEFAULT_RADIUS:  # a nearer view shows more than the others leave of the hull
        assert found.worst_view == 2


def test_what_no_image_can_show_scores_like_the_right_cameras(right, tmp_path):
    """A change of every camera that equals moving the object: the documented blind spot, pinned."""
    video, _ = read_object(right, views=1, frames_needed=1)
    base = check_frame(video)
    silhouettes, cameras = base.silhouettes, video.cameras.matrices[0]
    turned = camera_to_world(np.full(VIEWS, ELEVATION), AZIMUTHS + 90.0)
    np.testing.assert_array_equal(hull_check(silhouettes, turned).coverage, base.coverage)  # the grid turns onto itself
    turned = camera_to_world(np.full(VIEWS, ELEVATION), AZIMUTHS + 22.5)
    assert hull_check(silhouettes, turned).coverage.min() > 0.99
    # Training reads the cameras at unit distance, and so does the check: a scaled cameras.json is the same.
    scaled = shutil.copytree(right, tmp_path / "far")
    rig = load_cameras(right / CAMERAS_FILE)
    matrices = rig.matrices.copy()
    matrices[0, :, :3, 3] *= np.linspace(1.5, 3.0, VIEWS)[:, None]
    CameraRig(matrices).save(scaled / CAMERAS_FILE)
    np.testing.assert_array_equal(agreement(scaled).coverage, base.coverage)
    # Every frame from nearer (or an assumed radius that is off) is the same object, scaled.
    np.testing.assert_allclose(hull_check(silhouettes, cameras, radius=1.6).coverage, base.coverage, atol=0.01)
    near = render(animal(), cameras[::2], SIZE // 2, radius=1.9)  # 8 views at 64 px: a cheaper render
    assert (
        hull_check(np.stack([silhouette(Image.fromarray(image)) for image in near]), cameras[::2]).coverage.min() > 0.99
    )


def test_a_field_of_view_ten_degrees_off_costs_little():
    """MV-Video's field of view is not published: frames made at 30 or 50 degrees pass a check that assumes 40."""
    cameras = camera_to_world(np.full(VIEWS, ELEVATION), AZIMUTHS)[::2]  # 8 views: cheaper renders
    for fov, low, high in ((30.0, 0.97, 0.99), (50.0, 0.99, 1.0), (20.0, 0.90, 0.95)):
        images = render(animal(), cameras, SIZE, fov_degrees=fov)
        score = hull_check(np.stack([silhouette(Image.fromarray(image)) for image in images]), cameras).coverage.min()
        assert low <= score <= high, (fov, score)


def test_render_json_gives_the_field_of_view(right, tmp_path):
    """Frames rendered at 20 degrees fail the check at the default 40, and pass with dataset render's record."""
    folder = tmp_path / "narrow"
    shutil.copytree(right, folder)
    for view, image in enumerate(
        render(animal(), load_cameras(folder / CAMERAS_FILE).matrices[0], SIZE, fov_degrees=20.0)
    ):
        Image.fromarray(image).save(frame_path(folder, view, 0))
    assert agreement(folder).score < MIN_COVERAGE - 0.02  # measured 0.915
    (folder / RENDER_FILE).write_text(json.dumps({"settings": RenderSettings(radius=3.0, fov_degrees=20.0).to_json()}))
    assert camera_settings(folder) == (3.0, 20.0)
    assert agreement(folder).score > 0.98  # measured 0.989: the narrow views crop the object
    (folder / RENDER_FILE).write_text("{")
    with pytest.raises(VividZooError, match=r"render.json: not a render record of `dataset render` \(JSONDecodeError"):
        camera_settings(folder)


def test_an_object_beyond_the_frame_of_some_views_is_not_cut(tmp_path):
    """A point outside one view's image is no evidence against it: a large object's cropped views do not carve."""
    cameras = camera_to_world(np.full(VIEWS, ELEVATION), AZIMUTHS)[::2]
    images = render(animal(scale=1.9), cameras, SIZE // 2)  # 8 views at 64 px: a cheaper render
    assert any(image[:, [0, -1]].min() < 200 for image in images)  # the body leaves the frame at the sides
    silhouettes = np.stack([silhouette(Image.fromarray(image)) for image in images])
    assert hull_check(silhouettes, cameras).coverage.min() > 0.99


def test_the_coarse_carve_first_keeps_exactly_what_a_full_carve_keeps(right):
    """Every voxel centre tested against every silhouette grown by one pixel (outside an image: no evidence;
    outside all: dropped), by brute force, at 47 px (odd: the coarse grid overhangs the cube by one voxel)."""
    size = 47
    video, _ = read_object(right, views=1, frames_needed=1)
    silhouettes = np.stack([silhouette(source.read([0])[0], size) for source in video.sources])
    for cameras in (video.cameras.matrices[0], camera_to_world(np.full(VIEWS, ELEVATION), -AZIMUTHS)):
        occupied, edge = visual_hull(silhouettes, cameras)
        half = DEFAULT_RADIUS * math.tan(math.radians(DEFAULT_FOV_DEGREES) / 2)  # as the code rounds it
        assert edge == pytest.approx(2 * half / size)
        axis = (np.arange(size) + 0.5) * edge - half
        points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
        kept, seen_by_some = np.ones(len(points), dtype=bool), np.zeros(len(points), dtype=bool)
        for mask, camera in zip(silhouettes, cameras, strict=True):
            padded = np.pad(mask, 1)
            grown = np.zeros_like(mask)
            for dy in range(3):
                for dx in range(3):
                    grown |= padded[dy:dy + size, dx:dx + size]
            x, y = project(points, camera, size)
            column, row = np.floor(x).astype(int), np.floor(y).astype(int)
            seen = (column >= 0) & (column < size) & (row >= 0) & (row < size)
            kept &= ~seen | grown[row.clip(0, size - 1), column.clip(0, size - 1)]
            seen_by_some |= seen
        assert occupied.sum() > 1000 and (kept & ~seen_by_some).sum() > 0  # some voxel no view sees: dropped
        np.testing.assert_array_equal(occupied.reshape(-1), kept & seen_by_some)


def test_silhouettes_from_alpha_or_from_a_plain_background():
    """Alpha when there is transparency (a white object on white stays whole); else the border's colour."""
    pixels = np.full((40, 60, 4), 255, dtype=np.uint8)
    pixels[..., 3] = 0
    pixels[10:30, 20:40, 3] = 255  # a white square, opaque: only alpha tells it from the white background
    found = silhouette(Image.fromarray(pixels), 20)  # 60x40 -> 30x20, centre-cropped to 20x20
    assert found[5:15, 5:15].all() and found.sum() == 100
    grey = np.full((40, 40, 3), 90, dtype=np.uint8)
    grey[8:32, 8:32] = (200, 60, 30)
    grey[16:24, 16:24] = 90  # a hole that shows the background stays a hole
    grey[30:32, 8:32] = (90 + 20, 90, 90)  # within BACKGROUND_TOLERANCE: background
    found = silhouette(Image.fromarray(grey), 40)
    assert found[8:30, 8:32].sum() == 22 * 24 - 64 and found.sum() == 22 * 24 - 64


def test_dataset_check_reports_every_score_and_names_the_wrong_object(right, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(right, data / "good")
    with_cameras(right, data / "reversed", np.full(VIEWS, ELEVATION), -AZIMUTHS)
    check = ["dataset", "check", str(data), "--frames", "1", "--stride", "1"]
    assert main(check) == 1
    out = capsys.readouterr().out
    assert f"below {MIN_COVERAGE} is a problem): reversed 0.5" in out and ", good 1.00" in out, out
    assert "1 problems" in out and "  - reversed: its cameras disagree with its frames (camera check 0.5" in out
    assert "good:" not in out
    assert main(check + ["--quick"]) == 0
    assert "camera check" not in capsys.readouterr().out


def test_the_overlay_shows_what_the_hull_leaves_uncovered(right, tmp_path, capsys):
    good = np.asarray(camera_overlay(right, size=SIZE))
    wrong = with_cameras(right, tmp_path / "animal", np.full(VIEWS, ELEVATION), -AZIMUTHS)
    assert main(["dataset", "camera-overlay", str(wrong), "--out", str(tmp_path / "o.png"), "--size", str(SIZE)]) == 0
    assert "magenta = silhouette it does not cover" in capsys.readouterr().out
    bad = np.asarray(Image.open(tmp_path / "o.png"))
    assert good.shape == bad.shape == (4 * SIZE, 4 * SIZE, 3)

    def magenta(picture: np.ndarray) -> int:
        """Pixels half-tinted magenta: green well below red and blue (no brown, white, cyan or red pixel is)."""
        colours = picture.astype(int)
        return int((colours[..., 1] < colours[..., [0, 2]].min(-1) - 60).sum())

    assert (np.abs(good.astype(int) - HULL_COLOUR).max(-1) == 0).sum() > VIEWS * 50  # an outline in every view
    assert magenta(good) == 0
    assert magenta(bad) > 1000

"""Animate3D's 4 condition views of a static asset, rendered with Blender (data/render/condition_views.py).

The cameras are compared with Animate3D's own, recorded from its code by
tests/data/record_animate3d_condition_views.py. The renders are checked pixel by pixel on an asset built
here (sample_asset --facing): every vertex, through the returned framing and cameras, projects within 1 px of
the rendered silhouette and nothing touches the border; a marker on the asset's front and one on its left
side show in the views Animate3D expects (front, left, back, right). An animated asset's markers land, in
every view, where its first frame puts them.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from render_checks import blob_centre, needs_bpy, silhouette_errors

from vividzoo_core.cameras import project
from vividzoo_core.data.render.condition_views import (
    BACKGROUND,
    CAMERA_DISTANCE,
    ELEVATION,
    FOV_DEGREES,
    RESOLUTION,
    SCENE_RADIUS,
    VIEWS,
    ConditionViews,
    condition_cameras,
    render_condition_views,
)
from vividzoo_core.data.render.sample_asset import ACTIONS, FACING_BOXES, marker_centres
from vividzoo_core.errors import VividZooError

REFERENCE = json.loads((Path(__file__).parent / "data" / "animate3d_condition_views.json").read_text())
SIZE = 64
FAST = {"resolution": SIZE, "samples": 4, "denoise": False}
MARKERS = {"red": 0, "blue": 2}
"""The RGB channel of each marker of sample_asset --facing: red on the asset's front, blue on its left side."""
SEEN = {0: (["red", "blue"], "red"), 1: (["red", "blue"], "blue"), 2: (["blue"], "blue"), 3: (["red"], "red")}
"""Per view: the markers it shows, left to right, and the one facing the camera (nearest the image centre)."""


def test_the_cameras_are_animate3ds_condition_cameras() -> None:
    """Our rig is the pipeline's ``get_camera(4)``; moved out to CAMERA_DISTANCE it is the static render's."""
    rig = condition_cameras()
    assert (rig.frames, rig.views) == (1, VIEWS)
    np.testing.assert_allclose(rig.matrices[0], REFERENCE["get_camera_4"], atol=1e-6)
    static = REFERENCE["static_render"]
    read = slice(0, VIEWS)  # the static render writes 5 views (0 to 360 degrees); inference.py reads 0..3.png
    placed = rig.matrices[0].copy()
    placed[:, :3, 3] *= CAMERA_DISTANCE
    np.testing.assert_allclose(placed, np.array(static["c2w"])[read], atol=1e-5)
    assert static["camera_distance"][read] == [CAMERA_DISTANCE] * VIEWS
    assert static["elevation_deg"][read] == [ELEVATION] * VIEWS
    assert static["fovy_deg"][read] == pytest.approx([FOV_DEGREES] * VIEWS)
    assert (static["width"], static["height"]) == (RESOLUTION, RESOLUTION)
    # threestudio-3dgs' renderer uses 1 - back_ground_color outside training; the PNG holds int(255 * value)
    assert static["renderer_type"] == "diff-gaussian-rasterizer-advanced"
    assert BACKGROUND == tuple(int(255 * (1 - value)) for value in static["back_ground_color"])


def _write_asset(path: Path, *flags: str) -> Path:
    subprocess.run([sys.executable, "-m", "vividzoo_core.data.render.sample_asset", str(path), *flags], check=True,
                   capture_output=True)
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("assets")
    _write_asset(folder / "facing.glb", "--facing")
    _write_asset(folder / "facing.fbx", "--facing")  # FBX files carry their own axes
    _write_asset(folder / "walker.glb")
    _write_asset(folder / "hollow.glb", "--hollow", "--static")
    (folder / "broken.glb").write_bytes(b"glTF" + bytes(range(256)) * 4)
    return folder


@pytest.fixture(scope="module", params=["glb", "fbx"])
def facing(assets: Path, request: pytest.FixtureRequest) -> ConditionViews:
    return render_condition_views(assets / f"facing.{request.param}", **FAST)


def _in_render(views: ConditionViews, points: np.ndarray) -> np.ndarray:
    return points @ views.asset_to_render[:3, :3].T + views.asset_to_render[:3, 3]


def _pixel(views: ConditionViews, point: np.ndarray, view: int) -> tuple[float, float]:
    return project(point, views.cameras.matrices[0, view], SIZE, views.distance, views.fov_degrees)


def _rgba(views: ConditionViews, view: int) -> np.ndarray:
    return np.dstack([np.asarray(views.images[view]), np.asarray(views.masks[view])]) / 255


@needs_bpy
def test_every_vertex_lands_on_the_silhouette_and_the_asset_fills_the_unit_sphere(facing: ConditionViews) -> None:
    corners = np.array([np.add(centre, np.multiply(size / 2, signs)) for centre, size in FACING_BOXES.values()
                        for signs in itertools.product((-1, 1), repeat=3)])
    points = _in_render(facing, corners)
    low, high = points.min(0), points.max(0)  # turned by a right angle, the box is still axis-aligned
    np.testing.assert_allclose((low + high) / 2, 0.0, atol=1e-6)  # glTF stores float32
    assert np.linalg.norm(high - low) / 2 == pytest.approx(SCENE_RADIUS)
    for view in range(VIEWS):
        alpha = np.asarray(facing.masks[view]) / 255
        projected = np.array([_pixel(facing, point, view) for point in points])
        to_vertex, to_box, border = silhouette_errors(alpha, projected)
        assert to_vertex <= 1.0, f"view {view}: a vertex projects {to_vertex:.2f} px from the rendered silhouette"
        assert to_box <= 1.0, f"view {view}: the silhouette reaches {to_box:.2f} px beyond the projected vertices"
        assert border == 0.0, f"view {view}: the render touches the image border"


@needs_bpy
def test_the_views_show_the_front_left_back_and_right_in_animate3ds_order(facing: ConditionViews) -> None:
    for view, (order, facing_camera) in SEEN.items():
        image = _rgba(facing, view)
        found = {colour: blob_centre(image, channel) for colour, channel in MARKERS.items()}
        shown = sorted((centre[0], colour) for colour, centre in found.items() if centre is not None)
        assert [colour for _, colour in shown] == order, f"view {view} shows {shown}, expected {order}"
        nearest = min(shown, key=lambda seen: abs(seen[0] - SIZE / 2))[1]
        assert nearest == facing_camera, f"view {view}: the {nearest} marker faces the camera, not the {facing_camera}"


@needs_bpy
def test_the_object_is_over_animate3ds_grey(facing: ConditionViews) -> None:
    for image, mask in zip(facing.images, facing.masks):
        assert image.mode == "RGB" and mask.mode == "L" and image.size == mask.size == (SIZE, SIZE)
        rgb, alpha = np.asarray(image).astype(int), np.asarray(mask)
        assert (rgb[alpha == 0] == BACKGROUND).all()
        assert (alpha == 255).sum() > 100 and np.abs(rgb[alpha == 255] - BACKGROUND).max() > 60


@needs_bpy
def test_an_animated_asset_renders_its_first_frame_and_says_so(assets: Path) -> None:
    views = render_condition_views(assets / "walker.glb", **FAST)
    assert views.animation in ACTIONS and views.frame == 1.0
    assert views.note.startswith("walker.glb is animated") and f"of {views.animation!r}" in views.note
    markers = _in_render(views, marker_centres(views.animation, 1.0))
    for view in range(VIEWS):
        for marker, channel in zip(markers, (0, 2)):
            distance = math.dist(blob_centre(_rgba(views, view), channel), _pixel(views, marker, view))
            assert distance < 1.0, f"view {view}: a marker is {distance:.2f} px from its first-frame projection"


def test_a_missing_file_or_one_of_another_kind_is_refused_before_blender_starts(tmp_path: Path) -> None:
    (tmp_path / "folder.glb").mkdir()
    (tmp_path / "mesh.obj").touch()
    for name, reason in (("absent.glb", "no such file"), ("folder.glb", "is a folder"),
                         ("mesh.obj", "not a 3D asset file (.obj)")):
        with pytest.raises(VividZooError) as error:
            render_condition_views(tmp_path / name)
        assert str(error.value) == f"{tmp_path / name}: {reason}; give a .glb, .gltf, .fbx or .blend file"


@needs_bpy
def test_no_mesh_a_broken_file_and_a_timeout_are_one_line_errors_naming_the_file(
        assets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for name, reason in (("hollow.glb", "it has no mesh (no geometry to render)"),
                         ("broken.glb", "Blender cannot import it: ")):
        with pytest.raises(VividZooError) as error:
            render_condition_views(assets / name, **FAST)
        assert str(error.value).startswith(f"{assets / name}: {reason}") and "\n" not in str(error.value)
    assert not list(tmp_path.iterdir())  # nothing left behind
    with pytest.raises(VividZooError) as error:
        render_condition_views(assets / "facing.glb", timeout=0.5, **FAST)
    assert str(error.value).startswith(f"{assets / 'facing.glb'}: timeout: not finished after 0.5 s (log: ")
    assert [log.name for log in tmp_path.glob("*/*.log")] == ["blender.log"]  # kept: the message names it

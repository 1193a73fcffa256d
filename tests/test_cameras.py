"""MVDream's camera convention, orbit builders, JSON and transforms.json round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vividzoo_core.cameras import (
    CameraRig,
    camera_to_world,
    cameras_from_json,
    load_cameras,
    moving_orbit,
    orbit,
    transforms_json,
)
from vividzoo_core.data.reader import view_azimuths
from vividzoo_core.layout import VideoLayout

CHECK_VALUE = [1, 0, 0, 0, 0, 0.2588, -0.9659, -0.9659, 0, 0.9659, 0.2588, 0.2588, 0, 0, 0, 1]


def test_check_value_elevation_15_azimuth_0():
    np.testing.assert_allclose(camera_to_world(15, 0).reshape(16), CHECK_VALUE, atol=1e-4)


def test_orbit_places_views_evenly_and_is_static():
    rig = orbit(views=4, elevation=15, azimuth_start=90)
    assert rig.is_static and rig.views == 4
    np.testing.assert_allclose(rig.azimuths[0], [90, 180, 270, 360])
    # Each camera sits at unit distance and looks at the origin: -z axis (3rd column negated) points at it.
    for matrix in rig.matrices[0]:
        position = matrix[:3, 3]
        np.testing.assert_allclose(np.linalg.norm(position), 1.0)
        np.testing.assert_allclose(-matrix[:3, 2], -position, atol=1e-12)
    # Blender world is z-up: elevation 15 puts every camera at height sin(15 degrees).
    np.testing.assert_allclose(rig.matrices[0, :, 2, 3], np.sin(np.radians(15)))


def test_static_rig_repeats_over_time_in_layout_order():
    layout = VideoLayout(views=4, frames=3)
    embedding = orbit(4).for_layout(layout).embedding_input()
    assert embedding.shape == (12, 16) and embedding.dtype == torch.float32
    torch.testing.assert_close(embedding[layout.index(2, 1)], embedding[layout.index(0, 1)])
    torch.testing.assert_close(embedding[layout.index(0, 0)], torch.tensor(CHECK_VALUE), atol=1e-4, rtol=0)


def test_moving_orbit_turns_while_the_object_animates():
    rig = moving_orbit(views=4, frames=8, elevation=10, turn=360, elevation_end=30)
    assert (rig.frames, rig.views) == (8, 4)
    np.testing.assert_allclose(rig.azimuths[:, 0], np.arange(8) * 45.0)
    np.testing.assert_allclose(rig.azimuths[3] - rig.azimuths[3, 0], [0, 90, 180, 270])
    np.testing.assert_allclose(rig.elevations[[0, -1], 0], [10, 30])
    with pytest.raises(ValueError, match="trajectory has 8 frames but the video has 16"):
        rig.for_layout(VideoLayout(4, 16))


def test_camera_json_round_trip(tmp_path):
    rig = moving_orbit(views=2, frames=3, elevation=20, azimuth_start=30, turn=90)
    rig.save(tmp_path / "cameras.json")
    again = load_cameras(tmp_path / "cameras.json")
    np.testing.assert_allclose(again.matrices, rig.matrices, atol=1e-7)
    np.testing.assert_allclose(again.azimuths, rig.azimuths)
    bare = cameras_from_json([list(np.asarray(m).reshape(16)) for m in rig.matrices[0]])
    assert (bare.frames, bare.views) == (1, 2)


def test_transforms_json_has_time_and_reads_back_at_unit_distance(tmp_path):
    rig = moving_orbit(views=4, frames=5, elevation=15, turn=180)
    data = transforms_json(rig, 64, 48, lambda f, v: f"frames/f{f:03d}_v{v:02d}.png", radius=2.5, fov_degrees=40)
    assert len(data["frames"]) == 20 and (data["w"], data["h"]) == (64, 48)
    assert [e["time"] for e in data["frames"][::4]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    first = np.array(data["frames"][0]["transform_matrix"])
    np.testing.assert_allclose(np.linalg.norm(first[:3, 3]), 2.5)
    np.testing.assert_allclose(data["fl_x"], 32 / np.tan(np.radians(20)))
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    again = load_cameras(tmp_path / "transforms.json")
    np.testing.assert_allclose(again.matrices, rig.matrices, atol=1e-7)


def test_every_field_of_transforms_json_and_reading_it_back_in_any_order():
    rig = moving_orbit(views=3, frames=3, elevation=25, azimuth_start=10, turn=90)
    data = transforms_json(rig, 64, 48, lambda f, v: f"f{f}_v{v}.png", radius=2.0, fov_degrees=50)
    focal = 32 / np.tan(np.radians(25))
    assert {k: v for k, v in data.items() if k != "frames"} == pytest.approx({
        "camera_model": "OPENCV", "camera_angle_x": np.radians(50), "fl_x": focal, "fl_y": focal,
        "cx": 32, "cy": 24, "w": 64, "h": 48})
    for index, entry in enumerate(data["frames"]):
        f, v = divmod(index, 3)
        expected = rig.matrices[f, v].copy()
        expected[:3, 3] *= 2.0
        assert (entry["file_path"], entry["frame_index"], entry["view_index"], entry["time"]) == (
            f"f{f}_v{v}.png", f, v, f / 2)
        np.testing.assert_allclose(entry["transform_matrix"], expected, atol=1e-7)
        # The object's centre, the world origin, projects onto the principal point of every camera.
        camera = np.linalg.inv(np.array(entry["transform_matrix"])) @ np.array([0.0, 0.0, 0.0, 1.0])
        assert camera[2] == pytest.approx(-2.0)  # in front (OpenGL: -z), at the camera distance
        assert (data["cx"] + focal * camera[0] / -camera[2], data["cy"] - focal * camera[1] / -camera[2]) == \
            pytest.approx((32, 24), abs=1e-6)
    shuffled = dict(data, frames=data["frames"][::-1])
    np.testing.assert_allclose(cameras_from_json(shuffled).matrices, rig.matrices, atol=1e-7)
    by_time = dict(data, frames=[{k: e[k] for k in ("transform_matrix", "time", "view_index")}
                                 for e in data["frames"][::-1]])
    np.testing.assert_allclose(cameras_from_json(by_time).matrices, rig.matrices, atol=1e-7)
    uneven = dict(data, frames=data["frames"][:-1])
    with pytest.raises(ValueError, match=r"every time step must have the same number of views, got \[3, 3, 2\]"):
        cameras_from_json(uneven)
    with pytest.raises(ValueError, match=r"frames\[1\] is not an object"):
        cameras_from_json({"frames": [data["frames"][0], 7]})
    with pytest.raises(ValueError, match="'frames' is empty"):
        cameras_from_json({"frames": []})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"format": "vividzoo-cameras", "cameras": []}, "non-empty list"),
        ({"format": "vividzoo-cameras", "cameras": [[{"matrix": [1, 2, 3]}]]}, "expected a 4x4 matrix"),
        ([[1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2]], "last row"),
        ([[2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1]], "not a rotation"),
        ({"frames": [{"transform_matrix": np.eye(4).tolist()}]}, "at the origin"),
        ({"something": 1}, "not a camera file"),
    ],
)
def test_bad_camera_files_say_what_is_wrong(data, message):
    with pytest.raises(ValueError, match=message):
        cameras_from_json(data)


def test_camera_count_must_match_views():
    with pytest.raises(ValueError, match="the cameras have 4 views but the video has 6"):
        orbit(4).for_layout(VideoLayout(6, 2))
    with pytest.raises(ValueError, match="strictly between -90 and 90"):
        orbit(4, elevation=90)
    with pytest.raises(ValueError, match="shape"):
        CameraRig(np.zeros((2, 4, 3, 3)))


# MVDream's camera at elevation 30, azimuth 90, worked out by hand: position (cos e sin a, sin e, cos e cos a)
# = (0.866, 0.5, 0) in OpenGL world; right = forward x up = (0, 0, -1), up = right x forward = (-0.5, 0.866, 0);
# columns [right, up, -forward, position], then rows (x, -z, y) for Blender's z-up world.
HALF_SQRT3 = np.sqrt(3) / 2
ELEVATION_30_AZIMUTH_90 = [
    [0, -0.5, HALF_SQRT3, HALF_SQRT3],
    [1, 0, 0, 0],
    [0, HALF_SQRT3, 0.5, 0.5],
    [0, 0, 0, 1],
]


def test_hand_computed_camera_at_a_non_zero_azimuth():
    np.testing.assert_allclose(camera_to_world(30, 90), ELEVATION_30_AZIMUTH_90, atol=1e-12)


@pytest.mark.parametrize("elevation", [-30.0, 0.0, 15.0, 60.0])
@pytest.mark.parametrize("azimuth", [0.0, 45.0, 90.0, 135.0, 200.0, 315.0])
def test_cameras_at_every_angle(elevation, azimuth):
    matrix = camera_to_world(elevation, azimuth)
    e, a = np.radians(elevation), np.radians(azimuth)
    # Blender world (z up): the azimuth turns from -y towards +x, the elevation lifts towards +z.
    position = [np.cos(e) * np.sin(a), -np.cos(e) * np.cos(a), np.sin(e)]
    np.testing.assert_allclose(matrix[:3, 3], position, atol=1e-12)
    right, up, back = matrix[:3, 0], matrix[:3, 1], matrix[:3, 2]
    np.testing.assert_allclose(back, position, atol=1e-12)  # the camera looks at the origin along -z
    np.testing.assert_allclose(right, [np.cos(a), np.sin(a), 0.0], atol=1e-12)  # horizontal, turning with the azimuth
    np.testing.assert_allclose(up, np.cross(back, right), atol=1e-12)  # right-handed
    assert up[2] > 0  # the image's up points up in the world
    np.testing.assert_allclose(matrix[3], [0, 0, 0, 1])


@pytest.mark.parametrize("elevation", [0.0, 20.0, -10.0])
def test_view_azimuths_are_read_back_from_matrices_alone(tmp_path, elevation):
    rig = moving_orbit(views=6, frames=2, elevation=elevation, azimuth_start=100, turn=30)
    np.testing.assert_allclose(view_azimuths(CameraRig(rig.matrices)), [100, 160, 220, 280, 340, 40], atol=1e-9)
    # a transforms.json has matrices only (no angles): the branch that derives azimuths from them
    data = transforms_json(rig, 32, 32, lambda f, v: f"{f}_{v}.png")
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    loaded = load_cameras(tmp_path / "transforms.json")
    assert loaded.azimuths is None
    np.testing.assert_allclose(view_azimuths(loaded), [100, 160, 220, 280, 340, 40], atol=1e-6)
    np.testing.assert_allclose(view_azimuths(rig), [100, 160, 220, 280, 340, 40])


@pytest.mark.parametrize("elevations, named", [([10, 95], "95"), ([-91, 10], "-91")])
def test_an_impossible_elevation_is_named(elevations, named):
    with pytest.raises(ValueError, match=f"strictly between -90 and 90 degrees .* got {named}"):
        camera_to_world(elevations, [0, 0])


def test_a_static_rig_repeated_over_time_keeps_its_angles_per_frame_and_view():
    rig = orbit(4, elevation=20, azimuth_start=30).for_layout(VideoLayout(4, 3))
    np.testing.assert_array_equal(rig.azimuths, np.tile([30.0, 120.0, 210.0, 300.0], (3, 1)))
    np.testing.assert_array_equal(rig.elevations, np.full((3, 4), 20.0))
    entries = rig.to_json()["cameras"]
    assert [[(e["elevation"], e["azimuth"]) for e in row] for row in entries] == [
        [(20.0, 30.0), (20.0, 120.0), (20.0, 210.0), (20.0, 300.0)]] * 3
    matrices_only = CameraRig(orbit(4).matrices).for_layout(VideoLayout(4, 3))
    assert matrices_only.elevations is None and matrices_only.azimuths is None
    assert "azimuth" not in matrices_only.to_json()["cameras"][0][0]

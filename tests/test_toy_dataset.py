"""The toy dataset: its layout, pixel-exact camera poses, and motion between frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vividzoo_core.cameras import CAMERAS_FILE, load_cameras, project, transforms_json
from vividzoo_core.data.format import CAPTION_FILE, frame_path, view_folder
from vividzoo_core.data.toy import MOTIONS, Primitive, make_toy_dataset, write_object

RED = (1.0, 0.1, 0.1)
SIZE = 64


def _files(folders: list[Path]) -> dict[str, bytes]:
    return {str(p.relative_to(folder.parent)): p.read_bytes()
            for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def _centroid(image_path: Path) -> np.ndarray:
    """Centre of the non-white pixels, in continuous pixel coordinates (pixel centres at +0.5)."""
    rows, columns = np.nonzero((np.asarray(Image.open(image_path)) < 250).any(-1))
    assert len(rows) > 0, f"nothing drawn in {image_path}"
    return np.array([columns.mean(), rows.mean()]) + 0.5


def _pinhole_pixel(intrinsics: dict, entry: dict, point: tuple[float, float, float]) -> np.ndarray:
    """Where a transforms.json camera (OpenGL axes: y up, looks along -z) sees a world point."""
    x, y, z, _ = np.linalg.inv(np.array(entry["transform_matrix"])) @ np.array([*point, 1.0])
    return np.array([intrinsics["cx"] + intrinsics["fl_x"] * x / -z, intrinsics["cy"] - intrinsics["fl_y"] * y / -z])


def test_layout_captions_cameras_and_determinism(tmp_path):
    folders = make_toy_dataset(tmp_path / "a", objects=3, views=4, frames=3, size=16, seed=0)
    assert [f.name for f in folders] == ["toy_000", "toy_001", "toy_002"]
    for folder in folders:
        caption = (folder / CAPTION_FILE).read_text().strip()
        assert caption and "\n" not in caption and caption.endswith(", 3d asset")
        rig = load_cameras(folder / CAMERAS_FILE)
        assert rig.views == 4 and rig.frames in (1, 3)
        np.testing.assert_allclose(rig.azimuths[0], [0, 90, 180, 270])
        np.testing.assert_allclose(rig.elevations, 15)
        assert not view_folder(folder, 4).exists()
        for v in range(4):
            assert len(list(view_folder(folder, v).glob("*.png"))) == 3
            for f in range(3):
                with Image.open(frame_path(folder, v, f)) as image:
                    assert image.size == (16, 16) and image.mode == "RGB"
    again = make_toy_dataset(tmp_path / "b", objects=3, views=4, frames=3, size=16, seed=0)
    other = make_toy_dataset(tmp_path / "c", objects=3, views=4, frames=3, size=16, seed=1)
    assert _files(folders) == _files(again)
    assert _files(folders) != _files(other)


def test_an_off_centre_point_lands_where_the_saved_cameras_project_it(tmp_path):
    point = (0.35, -0.2, 0.25)
    folder = write_object(tmp_path / "dot", [[Primitive("sphere", point, 0.07, RED)]], "a red dot, 3d asset",
                          views=8, size=SIZE, elevation=30.0)
    rig = load_cameras(folder / CAMERAS_FILE)
    np.testing.assert_allclose(rig.azimuths[0], np.arange(8) * 45.0)  # includes 90 and 270
    intrinsics = transforms_json(rig, SIZE, SIZE, lambda f, v: str(frame_path(folder, v, f)))
    for v, entry in enumerate(intrinsics["frames"]):
        expected = _pinhole_pixel(intrinsics, entry, point)
        np.testing.assert_allclose(project(point, rig.matrices[0, v], SIZE), expected, atol=1e-6)
        np.testing.assert_allclose(_centroid(frame_path(folder, v, 0)), expected, atol=1.0,
                                   err_msg=f"view {v} (azimuth {rig.azimuths[0, v]})")
    # The views really look from different sides: the point's image moves by several pixels around the ring.
    assert np.ptp([_centroid(frame_path(folder, v, 0))[0] for v in range(8)]) > 10


def test_world_x_is_right_and_world_z_is_up_from_azimuth_0(tmp_path):
    scene = [[Primitive("sphere", (0.5, 0.0, 0.0), 0.08, RED)], [Primitive("sphere", (0.0, 0.0, 0.5), 0.08, RED)]]
    folder = write_object(tmp_path / "sides", scene, "two red dots, 3d asset", views=4, size=SIZE)
    matrix = load_cameras(folder / CAMERAS_FILE).matrices[0, 0]
    # MVDream azimuth 0: the camera's right axis (first column) is world +x, its up axis leans to world +z.
    np.testing.assert_allclose(matrix[:3, 0], [1, 0, 0], atol=1e-7)
    assert matrix[2, 1] > 0.9
    right, top = _centroid(frame_path(folder, 0, 0)), _centroid(frame_path(folder, 0, 1))
    assert right[0] > SIZE / 2 + 5 and abs(right[1] - SIZE / 2) < 5
    assert top[1] < SIZE / 2 - 5 and abs(top[0] - SIZE / 2) < 1


def test_every_motion_changes_consecutive_frames(tmp_path):
    folders = make_toy_dataset(tmp_path, objects=12, views=1, frames=4, size=24, seed=0)
    captions = [(folder / CAPTION_FILE).read_text() for folder in folders]
    assert {m for m in MOTIONS if any(m in caption for caption in captions)} == set(MOTIONS)
    for folder, caption in zip(folders, captions):
        images = [np.asarray(Image.open(frame_path(folder, 0, f)), dtype=np.int16) for f in range(4)]
        for f in range(3):
            assert np.abs(images[f + 1] - images[f]).max() > 20, f"{caption.strip()}: frames {f} and {f + 1} match"

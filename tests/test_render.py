"""``dataset render``: Blender renders of an animated asset made here, checked pixel by pixel.

The asset (vividzoo_core.data.render.sample_asset) carries a red and a blue emissive marker cube
whose centres are known at every frame of its two actions; each must land, through cameras.json and
render.json's normalisation, radius and field of view, within 1 px of its rendered blob. Needs bpy
(``pip install -e '.[test]'`` on Python 3.11); under CI the tests fail instead of skipping without it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vividzoo_core.cameras import load_cameras, orbit
from vividzoo_core.cli import main
from vividzoo_core.data.camera_check import check_objects
from vividzoo_core.data.reader import scan_dataset
from vividzoo_core.data.render.batch import find_assets, load_captions, render_assets, select_assets
from vividzoo_core.data.shards import Shard
from vividzoo_core.data.render.sample_asset import ACTIONS, marker_centres
from vividzoo_core.data.render.settings import RenderSettings, object_draws
from vividzoo_core.data.toy import project
from vividzoo_core.errors import VividZooError

HAVE_BPY = importlib.util.find_spec("bpy") is not None
if not HAVE_BPY and os.environ.get("CI"):
    raise RuntimeError("CI must run the render tests: install bpy (pip install -e '.[test]' on Python 3.11)")
needs_bpy = pytest.mark.skipif(not HAVE_BPY, reason="RENDER TESTS SKIPPED: bpy missing; pip install -e '.[test]' on Python 3.11")

TINY = RenderSettings(views=4, elevation=(10.0, 30.0), resolution=48, samples=4, denoise=False)
FRAMES = 6


def _write_asset(path: Path, *flags: str) -> Path:
    subprocess.run([sys.executable, "-m", "vividzoo_core.data.render.sample_asset", str(path), "--frames", str(FRAMES),
                    *flags], check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("assets")
    _write_asset(folder / "walker.glb")
    _write_asset(folder / "still.glb", "--static")
    _write_asset(folder / "hollow.glb", "--hollow")
    (folder / "broken.glb").write_bytes(b"glTF" + bytes(range(256)) * 4)
    return folder


@pytest.fixture(scope="module")
def rendered(assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dataset")
    (assets.parent / "captions.csv").write_text('walker,"two markers, moving"\n')
    code = main(["dataset", "render", str(assets), "--out", str(out), "--captions", str(assets.parent / "captions.csv"),
                 "--views", "4", "--elevation", "10:30", "--resolution", "48", "--samples", "4", "--no-denoise",
                 "--workers", "2"])
    assert code == 0
    return out


def _blob_centre(image: np.ndarray, channel: int) -> tuple[float, float]:
    """Alpha- and colour-weighted centre (x, y) of the pixels where ``channel`` dominates; pixel j spans [j, j+1)."""
    weight = image[..., 3] * np.clip(image[..., channel] - image[..., 2 - channel], 0.0, None)
    assert weight.sum() > 0.5, "marker not visible"
    rows, columns = np.mgrid[0:image.shape[0], 0:image.shape[1]] + 0.5
    return float((weight * columns).sum() / weight.sum()), float((weight * rows).sum() / weight.sum())


def _assert_markers_land(folder: Path, action: str, source_frames: list[float]) -> None:
    """The object sampled these source frames, and every marker is within 1 px of its cameras.json projection."""
    assert json.loads((folder / "render.json").read_text())["source_frames"] == source_frames
    worst = _worst_marker_error(folder, action)
    assert worst < 1.0, f"{action}: a marker is {worst:.2f} px from where cameras.json puts it"


def _worst_marker_error(folder: Path, action: str) -> float:
    """Largest distance (px) over views, frames and both markers between the rendered and projected centre."""
    assert action in ACTIONS
    record = json.loads((folder / "render.json").read_text())
    rig = load_cameras(folder / "cameras.json")
    centre, scale = np.array(record["normalisation"]["centre"]), record["normalisation"]["scale"]
    worst = 0.0
    for index, frame in enumerate(record["source_frames"]):
        for marker, channel in zip(scale * (marker_centres(action, frame) - centre), (0, 2)):
            for view in range(rig.views):
                image = np.asarray(Image.open(folder / "views" / f"{view:03d}" / f"{index:04d}.png"), dtype=np.float64) / 255
                found = _blob_centre(image, channel)
                wanted = project(marker, rig.matrices[0, view], image.shape[0], record["settings"]["radius"],
                                 record["settings"]["fov_degrees"])
                worst = max(worst, math.dist(found, wanted))
    return worst


@needs_bpy
def test_every_marker_lands_on_its_pixel_in_every_view_and_frame(rendered: Path) -> None:
    for action in ACTIONS:
        folder = rendered / f"walker--{action}"
        _assert_markers_land(folder, action, list(range(1, FRAMES + 1)))


@needs_bpy
def test_a_blend_file_is_resampled_to_the_output_fps(tmp_path: Path) -> None:
    asset = _write_asset(tmp_path / "blended.blend")
    settings = RenderSettings(views=3, elevation=(20.0, 20.0), fps=16, resolution=48, samples=4, denoise=False)
    summary = render_assets([asset], tmp_path / "out", settings)
    assert sorted(summary.rendered) == [f"blended--{action}" for action in sorted(ACTIONS)]
    for action in ACTIONS:
        folder = tmp_path / "out" / f"blended--{action}"
        _assert_markers_land(folder, action, [1.0, 2.5, 4.0, 5.5])  # 24 -> 16 fps


@needs_bpy
def test_every_take_of_an_fbx_file_becomes_an_object(tmp_path: Path) -> None:
    asset = _write_asset(tmp_path / "taken.fbx")
    settings = RenderSettings(views=3, elevation=(20.0, 20.0), max_frames=3, resolution=48, samples=4, denoise=False)
    summary = render_assets([asset], tmp_path / "out", settings)
    actions = {name.rsplit("-", 1)[1] for name in summary.rendered}
    assert actions == set(ACTIONS) and not summary.failed
    for name in summary.rendered:
        worst = _worst_marker_error(tmp_path / "out" / name, name.rsplit("-", 1)[1])
        assert worst < 1.0, f"{name}: a marker is {worst:.2f} px from where cameras.json puts it"


@needs_bpy
def test_the_moving_object_fits_the_framing_sphere_over_all_frames(rendered: Path) -> None:
    record = json.loads((rendered / "walker--move" / "render.json").read_text())
    centre, scale = np.array(record["normalisation"]["centre"]), record["normalisation"]["scale"]
    points = np.concatenate([scale * (marker_centres("move", f) - centre) for f in record["source_frames"]])
    limit = RenderSettings.from_json(record["settings"]).framing_sphere_radius()
    assert np.linalg.norm(points, axis=1).max() <= limit
    assert np.linalg.norm(points, axis=1).max() > 0.8 * limit  # markers reach the bounding box: it is tight


@needs_bpy
def test_cameras_are_the_orbit_of_the_drawn_angles(rendered: Path) -> None:
    for action in ACTIONS:
        folder = rendered / f"walker--{action}"
        record = json.loads((folder / "render.json").read_text())
        settings = RenderSettings.from_json(record["settings"])
        elevation, azimuth_start = object_draws(settings, folder.name)
        assert (record["elevation"], record["azimuth_start"]) == (elevation, azimuth_start)
        assert 10.0 <= elevation <= 30.0
        expected = orbit(settings.views, elevation, azimuth_start)
        np.testing.assert_allclose(load_cameras(folder / "cameras.json").matrices, expected.matrices, atol=1e-7)


@needs_bpy
def test_failures_are_logged_while_the_rest_renders(rendered: Path) -> None:
    failures = {Path(f["file"]).name: f["reason"] for f in map(json.loads, (rendered / "failures.jsonl").read_text().splitlines())}
    assert set(failures) == {"broken.glb", "still.glb", "hollow.glb"}
    assert "cannot import" in failures["broken.glb"]
    assert "no animation" in failures["still.glb"]
    assert "no mesh" in failures["hollow.glb"]
    assert sorted(p.name for p in rendered.iterdir() if not p.name.startswith(".") and p.is_dir()) == \
        [f"walker--{action}" for action in sorted(ACTIONS)]


@needs_bpy
def test_output_is_a_dataset_the_reader_accepts(rendered: Path) -> None:
    report = scan_dataset(rendered, views=4, frames_needed=FRAMES)
    assert report.problems == [] and len(report.objects) == 2
    assert report.objects[0].caption == "two markers, moving, 3d asset"
    record = json.loads((rendered / "walker--move" / "render.json").read_text())
    assert record["animation"] == "move" and len(record["sha256"]) == 64


@needs_bpy
def test_the_renders_pass_the_camera_check(rendered: Path) -> None:
    """Blender's alpha silhouettes, carved through cameras.json with render.json's radius and field of view."""
    agreements = check_objects(scan_dataset(rendered, views=4, frames_needed=FRAMES).objects)
    assert len(agreements) == 2 and all(agreement.problem() is None for agreement in agreements)
    assert min(agreement.score for agreement in agreements) > 0.99, [a.coverage for a in agreements]


@needs_bpy
def test_an_asset_past_its_timeout_fails_and_the_batch_goes_on(assets: Path, tmp_path: Path) -> None:
    summary = render_assets([assets / "walker.glb"], tmp_path, TINY, timeout=0.5)
    assert summary.rendered == [] and "timeout" in summary.failed[0]["reason"]


@needs_bpy
def test_a_killed_run_resumes_without_redoing_finished_objects(assets: Path, tmp_path: Path) -> None:
    for name in ("first", "second", "third"):
        (tmp_path / f"{name}.glb").write_bytes((assets / "walker.glb").read_bytes())
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vividzoo_core.cli", "dataset", "render", *(str(tmp_path / f"{n}.glb") for n in
               ("first", "second", "third")), "--out", str(out), "--views", "2", "--resolution", "16", "--samples", "1",
               "--no-denoise", "--max-frames", "2"]
    run = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / ".render" / "done" / "first.json").exists():
        assert time.monotonic() < deadline and run.poll() is None, "the first asset never finished"
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    for folder in (p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        assert len(list(folder.glob("views/*/*.png"))) == 4, f"{folder.name} is half written"
    finished = {p: p.stat().st_mtime_ns for p in out.glob("first--*/**/*") if p.is_file()}
    assert finished and not list(out.glob("first--*/caption.txt"))  # no --captions: no caption, never an invented one
    subprocess.run(command, check=True, capture_output=True)
    assert {p: p.stat().st_mtime_ns for p in out.glob("first--*/**/*") if p.is_file()} == finished
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        [f"{n}--{a}" for n in ("first", "second", "third") for a in sorted(ACTIONS)]
    assert scan_dataset(out, 2, 2).problems == [f"{n}--{a}: no caption.txt" for n in ("first", "second", "third")
                                                for a in sorted(ACTIONS)]
    assert list((out / ".render" / "tmp").rglob("*")) == [out / ".render" / "tmp" / "shard-0-of-1"]


def test_shards_are_disjoint_and_together_complete(tmp_path: Path) -> None:
    for index in range(23):
        (tmp_path / f"asset{index:02d}.glb").touch()
    assets = find_assets([tmp_path])
    parts = [select_assets(Shard(index, 5), list(reversed(assets))) for index in range(5)]
    chosen = [asset for part in parts for asset in part]
    assert len(chosen) == len(set(chosen)) == 23 and set(chosen) == set(assets)
    assert {len(part) for part in parts} == {4, 5}


def test_duplicate_names_and_bad_options_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.glb").touch()
    with pytest.raises(SystemExit) as exit_info:
        main(["dataset", "render", str(tmp_path), "--out", str(tmp_path / "o"), "--shard", "3/3"])
    assert exit_info.value.code == 2 and "'3/3' is not a shard; use I/N with 0 <= I < N" in capsys.readouterr().err
    if HAVE_BPY:
        assert main(["dataset", "render", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
        assert "two assets share the name 'same'" in capsys.readouterr().err


def test_missing_blender_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.glb").touch()
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bpy" else real_find_spec(name, *a))
    assert main(["dataset", "render", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "pip install 'vividzoo[render]'" in capsys.readouterr().err


def test_captions_from_cap3d_csv_and_json(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text('abc,a red fox, running\n"d,e","quoted, with comma"\n\n')
    assert load_captions(tmp_path / "c.csv") == {"abc": "a red fox, running", "d,e": "quoted, with comma"}
    (tmp_path / "c.json").write_text('{"abc": "a  red fox\\n", "empty": " "}')
    assert load_captions(tmp_path / "c.json") == {"abc": "a red fox"}
    (tmp_path / "bad.json").write_text('["abc", "a fox"]')
    with pytest.raises(VividZooError, match="expected one JSON object"):
        load_captions(tmp_path / "bad.json")

"""The dataset checker catches every problem before training; the reader samples like the paper."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vividzoo_core.cameras import orbit
from vividzoo_core.cli import main
from vividzoo_core.data.format import frame_path
from vividzoo_core.data.frames import load_image
from vividzoo_core.data.reader import MultiViewVideoDataset, evenly_spaced_view_sets, scan_dataset, view_azimuths
from vividzoo_core.data.toy import make_toy_dataset
from vividzoo_core.training.sampler import EpochSampler


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("pristine")
    make_toy_dataset(directory, objects=2, views=8, frames=8, size=24, seed=3)
    return directory


@pytest.fixture
def data(pristine, tmp_path) -> Path:
    shutil.copytree(pristine, tmp_path / "data")
    return tmp_path / "data"


def problems(directory: Path, frames_needed: int = 8) -> list[str]:
    return scan_dataset(directory, views=4, frames_needed=frames_needed).problems


def test_a_good_dataset_has_no_problems(data):
    report = scan_dataset(data, views=4, frames_needed=8)
    assert report.problems == [] and len(report.objects) == 2
    video = report.objects[0]
    assert (video.views, video.frames) == (8, 8) and video.caption.endswith(", 3d asset")
    # 8 azimuths, 45 degrees apart: every start view has an orthogonal set (start, +90, +180, +270).
    assert video.view_sets[0] == [0, 2, 4, 6] and len(video.view_sets) == 8


def _break(data: Path, how: str) -> str:
    toy = data / "toy_000"
    if how == "missing frame":
        frame_path(toy, 1, 3).unlink()
        return "toy_000: view 001 is missing frame(s) 0003"
    if how == "unequal frames":
        frame_path(toy, 2, 7).unlink()
        return "toy_000: views have unequal frame counts"
    if how == "unreadable image":
        frame_path(toy, 0, 2).write_bytes(b"\x89PNG\r\n\x1a\nnot really")
        return "toy_000: unreadable image views/000/0002.png"
    if how == "missing cameras":
        (toy / "cameras.json").unlink()
        return "toy_000: cameras.json: camera file not found"
    if how == "malformed cameras":
        (toy / "cameras.json").write_text("{")
        return "toy_000: cameras.json: cameras.json: not readable JSON"
    if how == "wrong camera count":
        orbit(3).save(toy / "cameras.json")
        return "toy_000: cameras.json has 3 views but there are 8 view folders"
    if how == "empty caption":
        (toy / "caption.txt").write_text("  \n")
        return "toy_000: caption.txt is empty"
    if how == "missing caption":
        (toy / "caption.txt").unlink()
        return "toy_000: no caption.txt"
    if how == "no orthogonal views":
        for view in (1, 3, 5, 7):
            shutil.rmtree(toy / "views" / f"{view:03d}")
        for view in (2, 4, 6):
            (toy / "views" / f"{view:03d}").rename(toy / "views" / f"{view // 2:03d}")
        orbit(4, azimuth_span=300).save(toy / "cameras.json")
        return "toy_000: no 4 views 90 degrees apart among the azimuths 0, 75, 150, 225"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["missing frame", "unequal frames", "unreadable image", "missing cameras",
                                 "malformed cameras", "wrong camera count", "empty caption", "missing caption",
                                 "no orthogonal views"])
def test_the_checker_catches(data, how):
    expected = _break(data, how)
    found = problems(data, frames_needed=7)
    assert any(p.startswith(expected) for p in found), found
    report = scan_dataset(data, views=4, frames_needed=7)
    assert [o.directory.name for o in report.objects] == ["toy_001"]  # the broken object is left out


def test_too_few_frames_for_the_clip(data):
    assert problems(data, frames_needed=46) == [
        "toy_000: has 8 frames; a training clip needs 46", "toy_001: has 8 frames; a training clip needs 46"]


def test_check_command_reports_and_fails(data, capsys):
    assert main(["dataset", "check", str(data), "--frames", "4", "--stride", "2"]) == 0
    _break(data, "empty caption")
    assert main(["dataset", "check", str(data), "--frames", "4", "--stride", "2"]) == 1
    assert "toy_000: caption.txt is empty" in capsys.readouterr().out


def test_samples_are_orthogonal_strided_and_deterministic(data):
    report = scan_dataset(data, views=4, frames_needed=7)
    dataset = MultiViewVideoDataset(report.objects, views=4, frames=4, frame_stride=2, image_size=16,
                                    caption_dropout=0.0, seed=9)
    sample = dataset[(0, 1)]
    assert sample["pixels"].shape == (16, 3, 16, 16) and sample["cameras"].shape == (16, 16)
    assert sample["pixels"].min() >= -1 and sample["pixels"].max() <= 1
    assert torch.equal(sample["pixels"], dataset[(0, 1)]["pixels"])
    video = report.objects[1]
    cameras = sample["cameras"].view(4, 4, 4, 4).numpy()  # frames, views, 4x4
    rig = video.cameras
    azimuths = view_azimuths(rig)
    chosen = [int(np.argmin(np.abs(rig.matrices[0] - cameras[0, v]).sum((1, 2)))) for v in range(4)]
    assert chosen in video.view_sets
    np.testing.assert_allclose(np.diff(np.unwrap(np.radians(azimuths[chosen]))), np.radians(90), atol=1e-6)
    # Frames at stride 2 from a start: matches the images of those views and frames.
    start = next(s for s in range(video.frames - 6)
                 if torch.allclose(sample["pixels"][0], load_image(video.sources[chosen[0]].paths[s], 16)))
    for f in range(4):
        for v in range(4):
            expected = load_image(video.sources[chosen[v]].paths[start + 2 * f], 16)
            assert torch.allclose(sample["pixels"][f * 4 + v], expected)
    choices = {tuple(dataset[(epoch, 1)]["cameras"][:4, 3].tolist()) for epoch in range(12)}
    assert len(choices) > 1  # other epochs draw other view sets


def test_caption_dropout_and_transparent_images(tmp_path):
    image = Image.new("RGBA", (40, 20), (255, 0, 0, 0))
    image.putpixel((20, 10), (0, 0, 255, 255))
    image.save(tmp_path / "a.png")
    loaded = load_image(tmp_path / "a.png", 10)
    assert loaded.shape == (3, 10, 10) and torch.allclose(loaded[:, 0, 0], torch.ones(3))  # white behind
    make_toy_dataset(tmp_path / "d", objects=1, views=4, frames=3, size=16)
    objects = scan_dataset(tmp_path / "d", 4, 3).objects
    dataset = MultiViewVideoDataset(objects, 4, 3, 1, 16, caption_dropout=0.5, seed=0)
    captions = {dataset[(epoch, 0)]["caption"] for epoch in range(20)}
    assert captions == {"", objects[0].caption}


def test_epoch_sampler_resumes_and_shards():
    fresh = EpochSampler(10, seed=1)
    stream = list(itertools.islice(iter(fresh), 25))
    assert sorted(i for e, i in stream[:10]) == list(range(10)) and stream[10][0] == 1
    resumed = EpochSampler(10, seed=1, start=13)  # one epoch of 10, then 3 more
    assert list(itertools.islice(iter(resumed), 12)) == stream[13:25]
    shards = [list(itertools.islice(iter(EpochSampler(10, seed=1, rank=r, processes=3)), 3)) for r in range(3)]
    assert len({key for shard in shards for key in shard}) == 9


def test_view_sets_tolerate_small_angle_errors():
    assert evenly_spaced_view_sets(np.array([0.5, 91.0, 179.2, 270.9]), 4) == [[0, 1, 2, 3], [1, 2, 3, 0],
                                                                              [2, 3, 0, 1], [3, 0, 1, 2]]
    assert evenly_spaced_view_sets(np.array([0.0, 100.0, 180.0, 270.0]), 4) == []
    assert json.dumps(view_azimuths(orbit(4, azimuth_start=30)).round(6).tolist()) == "[30.0, 120.0, 210.0, 300.0]"

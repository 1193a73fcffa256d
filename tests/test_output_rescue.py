"""A finished generation survives a failing output: it is saved elsewhere and the message says where."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vividzoo_core import video as video_module
from vividzoo_core.cameras import orbit
from vividzoo_core.cli import main
from vividzoo_core.errors import VividZooError
from vividzoo_core.video import MultiViewVideo, save_video_or_rescue, to_uint8


@pytest.fixture
def rescue_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _video(frames: int = 3, views: int = 2) -> MultiViewVideo:
    return MultiViewVideo(torch.rand(frames, views, 16, 24, 3), orbit(views), 8.0, {"prompt": "a chair"})


def _fail_after(calls: int, writer):
    """A writer that works ``calls`` times, then fails as a full disk would."""
    count = {"n": 0}

    def failing(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise OSError(28, "No space left on device")
        return writer(*args, **kwargs)

    return failing


def test_an_unwritable_output_folder_writes_the_video_in_full_elsewhere(tmp_path, rescue_dir):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the output folder should be")
    video = _video()
    with pytest.raises(VividZooError, match=f"could not write the outputs to {blocker}/out .*written to") as caught:
        save_video_or_rescue(video, blocker / "out")
    rescued = Path(re.search(r"written to (\S+) instead", str(caught.value))[1])
    assert rescued.parent == rescue_dir
    assert {"grid.mp4", "grid.webp", "view_00.mp4", "view_01.mp4", "cameras.json"} <= {
        p.name for p in rescued.iterdir()
    }
    first = np.asarray(Image.open(rescued / "frames" / "f000_v01.png"))
    assert np.array_equal(first, to_uint8(video.frames[0, 1]))


def test_a_writer_failing_mid_way_keeps_the_frames(tmp_path, rescue_dir, monkeypatch):
    monkeypatch.setattr(video_module, "write_mp4", _fail_after(1, video_module.write_mp4))
    video = _video()
    with pytest.raises(VividZooError, match="OSError: .*No space left on device.*frames.npz") as caught:
        save_video_or_rescue(video, tmp_path / "out")
    assert (tmp_path / "out" / "grid.mp4").exists()  # it did fail mid-way
    saved = np.load(re.search(r"saved in (\S+\.npz)", str(caught.value))[1])
    assert np.array_equal(saved["frames"], to_uint8(video.frames))
    assert np.array_equal(saved["cameras"], video.cameras.matrices)
    assert float(saved["fps"]) == 8.0 and "a chair" in str(saved["info"])


def test_the_cli_says_where_a_finished_generation_went(weights, tmp_path, rescue_dir, monkeypatch, capsys):
    monkeypatch.setattr(video_module, "write_webp", _fail_after(0, video_module.write_webp))
    code = main(["generate", "--mvdream", str(weights.mvdream), "--motion", str(weights.motion["v2"]), "--prompt",
                 "x", "--views", "2", "--frames", "2", "--size", "16", "--steps", "1", "--seed", "0", "--device",
                 "cpu", "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2 and "Traceback" not in error
    line = error.strip().splitlines()[-1]
    assert line.startswith("error: could not write the outputs to") and "frames.npz" in line
    saved = np.load(re.search(r"saved in (\S+\.npz)", line)[1])
    assert saved["frames"].shape == (2, 2, 16, 16, 3) and saved["frames"].std() > 0

"""The Gaussian sequence on disk: PLYs, manifest and turntable under their names, read back, never overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vividzoo_core.errors import VividZooError
from vividzoo_core.gaussian_sequence import (
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    TURNTABLE_MP4,
    GaussianSequence,
    TurntableSettings,
    load_gaussian_sequence,
    ply_name,
    save_gaussian_sequence,
    turntable_frames,
)
from vividzoo_core.gaussians import ply_bytes
from vividzoo_core.splatting import turntable

SIZE = 32


def blob(rgb: tuple[float, float, float], extra_faint: int = 0) -> torch.Tensor:
    """One big opaque ball of colour ``rgb`` at the origin, plus ``extra_faint`` Gaussians pruned from the file."""
    ball = torch.tensor([[0, 0, 0, 0.95, 0.3, 0.3, 0.3, 1, 0, 0, 0, *rgb]], dtype=torch.float32)
    faint = ball.repeat(extra_faint, 1)
    faint[:, 3] = 0.001
    return torch.cat([ball, faint])


def sequence() -> GaussianSequence:
    return GaussianSequence([blob((1.0, 0.0, 0.0)), blob((0.0, 0.0, 1.0), extra_faint=3)], fps=8.0,
                            cameras=[turntable(4)], info={"model": "test"})


def decoded_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_writes_plys_manifest_and_turntable(tmp_path: Path) -> None:
    seq = sequence()
    written = save_gaussian_sequence(seq, tmp_path / "out", turntable_settings=TurntableSettings(size=SIZE))
    out = tmp_path / "out"
    assert written["manifest"] == out / MANIFEST_FILE and written["turntable"] == out / TURNTABLE_MP4
    for frame, gaussians in enumerate(seq.frames):
        assert (out / ply_name(frame)).read_bytes() == ply_bytes(gaussians)
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["format"] == MANIFEST_FORMAT and manifest["fps"] == 8.0 and manifest["frames"] == 2
    assert manifest["files"] == [ply_name(0), ply_name(1)] and manifest["gaussians"] == [1, 1]
    assert manifest["info"] == {"model": "test"} and manifest["cameras"]["fovy_degrees"] == 49.1
    assert manifest["turntable"]["frames"] == turntable_frames(2) == 48
    video = decoded_frames(out / TURNTABLE_MP4)
    assert video.shape == (48, SIZE, SIZE, 3)
    centre = video[:, SIZE // 2, SIZE // 2].astype(int)
    # the sequence loops: even frames show the red frame, odd ones the blue (codec error well below 100 levels)
    assert (centre[0::2, 0] - centre[0::2, 2] > 100).all() and (centre[1::2, 2] - centre[1::2, 0] > 100).all()
    assert (video[:, 0, 0] > 230).all()  # the white background in the corners


def test_the_turntable_shows_whole_loops_of_at_least_48_frames() -> None:
    assert [turntable_frames(n) for n in (1, 2, 5, 16, 48, 60)] == [48, 48, 50, 48, 48, 60]


def test_reads_back_what_it_wrote(tmp_path: Path) -> None:
    seq = sequence()
    save_gaussian_sequence(seq, tmp_path, preview=False)
    assert not (tmp_path / TURNTABLE_MP4).exists()
    back = load_gaussian_sequence(tmp_path)
    assert back.fps == 8.0 and back.info == {"model": "test"} and len(back.frames) == 2
    assert [len(f) for f in back.frames] == [1, 1]  # the faint ones were pruned
    torch.testing.assert_close(back.frames[1], seq.frames[1][:1], rtol=1e-6, atol=1e-6)
    for ours, theirs in zip(back.cameras[0], seq.cameras[0]):
        np.testing.assert_allclose(ours.camera_to_world, theirs.camera_to_world, atol=1e-8)


def test_nothing_is_overwritten(tmp_path: Path) -> None:
    save_gaussian_sequence(sequence(), tmp_path, preview=False)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    other = GaussianSequence([blob((0.0, 1.0, 0.0))])
    with pytest.raises(VividZooError, match="already exists.*nothing was overwritten"):
        save_gaussian_sequence(other, tmp_path, preview=False)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_bad_sequences_and_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(VividZooError, match="at least one frame"):
        GaussianSequence([])
    with pytest.raises(VividZooError, match="fps"):
        GaussianSequence([blob((1.0, 1.0, 1.0))], fps=0)
    with pytest.raises(VividZooError, match="frame 1"):
        GaussianSequence([blob((1.0, 1.0, 1.0)), torch.zeros(4, 13)])
    with pytest.raises(VividZooError, match=f"no {MANIFEST_FILE}"):
        load_gaussian_sequence(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text('{"format": "something else"}')
    with pytest.raises(VividZooError, match="not a Gaussian sequence manifest"):
        load_gaussian_sequence(tmp_path)

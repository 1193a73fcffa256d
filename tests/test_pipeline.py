"""The standalone pipeline, context windows, video files and the CLI, end to end on tiny weights."""

from __future__ import annotations

import json

import av
import pytest
import torch
from PIL import Image

from vividzoo_core.cli import main
from vividzoo_core.context_windows import blend_windows, frame_windows, window_weights
from vividzoo_core.layout import VideoLayout
from vividzoo_core.pipeline import VividZooPipeline
from vividzoo_core.settings import GenerationSettings
from vividzoo_core.video import views_to_grid

SMALL = dict(prompt="a corgi, 3d asset", views=4, frames=4, width=32, height=32, steps=3)


@pytest.fixture(scope="module")
def aligned(weights):
    return VividZooPipeline.from_files(
        weights.mvdream, weights.motion["v2"], weights.alignment, "cpu", log=lambda m: None
    )


@pytest.fixture(scope="module")
def training_free(weights):
    notes = []
    pipeline = VividZooPipeline.from_files(weights.mvdream, weights.motion["v2"], None, "cpu", log=notes.append)
    pipeline.logged = notes
    return pipeline


def test_generation_is_deterministic_for_a_seed(aligned):
    first = aligned.generate(GenerationSettings(**SMALL, seed=5))
    again = aligned.generate(GenerationSettings(**SMALL, seed=5))
    other = aligned.generate(GenerationSettings(**SMALL, seed=6))
    assert first.frames.shape == (4, 4, 32, 32, 3)
    assert torch.equal(first.frames, again.frames)
    assert not torch.equal(first.frames, other.frames)
    assert first.info["seed"] == 5 and first.info["alignment"].startswith("alignment_v2")


def test_training_free_mode_is_announced_and_differs_from_aligned(aligned, training_free):
    assert any("training-free" in note for note in training_free.logged)
    assert training_free.names["alignment"] == "none (training-free)"
    free = training_free.generate(GenerationSettings(**SMALL, seed=1))
    with_alignment = aligned.generate(GenerationSettings(**SMALL, seed=1))
    assert (free.frames - with_alignment.frames).abs().max() > 1e-3


def test_frame_windows_cover_every_frame_and_blend_back():
    assert frame_windows(8, 16, 4) == [list(range(8))]
    windows = frame_windows(40, 16, 4)
    assert windows[0][0] == 0 and windows[-1][-1] == 39 and all(len(w) == 16 for w in windows)
    assert all(len(set(a) & set(b)) >= 4 for a, b in zip(windows, windows[1:]))
    assert window_weights(4).tolist() == [1, 2, 2, 1]
    layout = VideoLayout(3, 10)
    x = torch.randn(2 * layout.images, 2, 2, 2)
    seen = []

    def predict(part, window):
        seen.append(window)
        assert part.shape[0] == 2 * 3 * len(window)
        return part * 2

    torch.testing.assert_close(blend_windows(predict, x, layout, frame_windows(10, 4, 2)), x * 2)
    assert seen == frame_windows(10, 4, 2)


def test_long_video_uses_context_windows(aligned):
    settings = GenerationSettings(**{**SMALL, "frames": 10}, context_frames=4, context_overlap=2, seed=2)
    seen = []
    hook = aligned.network.register_forward_pre_hook(lambda module, args: seen.append((args[0].shape[0], args[4])))
    try:
        video = aligned.generate(settings)
    finally:
        hook.remove()
    # windows [0-3], [2-5], [4-7], [6-9] at each of 3 steps; each call holds uncond + cond of 4 frames x 4 views
    assert [(batch, layout.views, layout.frames) for batch, layout in seen] == [(2 * 4 * 4, 4, 4)] * 4 * 3
    assert video.frames.shape[0] == 10 and torch.isfinite(video.frames).all()
    whole = aligned.generate(GenerationSettings(**{**SMALL, "frames": 10}, context_frames=10, seed=2))
    assert (whole.frames - video.frames).abs().max() > 1e-3  # the motion modules saw other frames


def test_demo_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    assert "demo finished" in capsys.readouterr().out
    for name in ["grid.mp4", "grid.webp", "cameras.json", "transforms.json"] + [f"view_{v:02d}.mp4" for v in range(4)]:
        assert (tmp_path / name).stat().st_size > 0, name
    assert len(list((tmp_path / "frames").glob("*.png"))) == 4 * 8
    with av.open(str(tmp_path / "grid.mp4")) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 8 and frames[0].shape == (64, 4 * 64, 3)
    with av.open(str(tmp_path / "view_02.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 8
    webp = Image.open(tmp_path / "grid.webp")
    assert webp.n_frames == 8 and webp.size == (256, 64)
    transforms = json.loads((tmp_path / "transforms.json").read_text())
    assert len(transforms["frames"]) == 32 and (tmp_path / transforms["frames"][5]["file_path"]).exists()
    cameras = json.loads((tmp_path / "cameras.json").read_text())
    assert (cameras["views"], cameras["frames"]) == (4, 8)


def test_generate_many_prompts_from_a_file(tmp_path, weights):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# a comment\na red car, 3d asset\n\na blue bird, 3d asset\n")
    code = main([
        "generate", "--mvdream", str(weights.mvdream), "--motion", str(weights.motion["v3"]), "--prompts", str(prompts),
        "--views", "2", "--frames", "3", "--size", "32", "--steps", "2", "--seed", "3", "--turn", "90",
        "--out", str(tmp_path / "out"),
    ])
    assert code == 0
    folders = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert folders == ["000_a_red_car_3d_asset", "001_a_blue_bird_3d_asset"]
    cameras = json.loads((tmp_path / "out" / folders[0] / "cameras.json").read_text())
    assert cameras["frames"] == 3 and cameras["cameras"][1][0]["azimuth"] == 30.0


def test_grid_places_views_side_by_side():
    frames = torch.zeros(2, 3, 4, 5, 3)
    for v in range(3):
        frames[:, v] = v
    grid = views_to_grid(frames)
    assert grid.shape == (2, 4, 15, 3)
    assert [grid[0, 0, 5 * v, 0].item() for v in range(3)] == [0, 1, 2]
    assert views_to_grid(torch.zeros(1, 6, 4, 4, 3)).shape == (1, 8, 12, 3)


def test_inspect_command(weights, capsys):
    assert main(["inspect", str(weights.motion["v1"])]) == 0
    out = capsys.readouterr().out
    assert "AnimateDiff v1" in out and "max_frames: 24" in out
    assert main(["inspect", "--json", str(weights.mvdream)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["usable"] and report["family"] == "sd15" and report["parts"] == ["unet", "vae", "text_encoder"]

"""Frame ``f`` of view ``v`` is image ``(f, v)`` in every output: the pipeline's frames, grid.mp4,
view_XX.mp4, frames/*.png, and the nodes' IMAGE batches. Each image gets its own flat colour
(red = frame, green = view), which survives H.264, and the written files are decoded and checked."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image
from test_sampling_math import StubPipeline

from vividzoo_core import pipeline as pipeline_module
from vividzoo_core.cameras import orbit
from vividzoo_core.layout import VideoLayout
from vividzoo_core.settings import GenerationSettings
from vividzoo_core.video import MultiViewVideo, frame_name, save_video

FRAMES, VIEWS, SIZE = 3, 3, 32
TOLERANCE = 0.06  # colours are 0.35 apart; H.264 at crf 18 moves flat colours by a few levels


def colour(frame: int, view: int) -> torch.Tensor:
    return torch.tensor([0.15 + 0.35 * frame, 0.15 + 0.35 * view, 0.5])


def coloured_frames() -> torch.Tensor:
    """``(F, V, H, W, 3)``: image (f, v) filled with colour(f, v)."""
    frames = torch.empty(FRAMES, VIEWS, SIZE, SIZE, 3)
    for f in range(FRAMES):
        for v in range(VIEWS):
            frames[f, v] = colour(f, v)
    return frames


def centre(image: np.ndarray) -> torch.Tensor:
    """Mean colour of the middle of a uint8 image, in [0, 1]."""
    height, width = image.shape[:2]
    patch = image[height // 4: 3 * height // 4, width // 4: 3 * width // 4]
    return torch.from_numpy(patch.reshape(-1, 3).astype(np.float32).mean(0) / 255)


def decoded(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def assert_colour(image: np.ndarray, frame: int, view: int) -> None:
    torch.testing.assert_close(centre(image), colour(frame, view), atol=TOLERANCE, rtol=0,
                               msg=lambda m: f"frame {frame} view {view}: {m}")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("video")
    save_video(MultiViewVideo(coloured_frames(), orbit(VIEWS)), out)
    return out


def test_grid_mp4_holds_each_frame_with_views_left_to_right(written):
    grid = decoded(written / "grid.mp4")
    assert len(grid) == FRAMES and grid[0].shape == (SIZE, VIEWS * SIZE, 3)
    for f in range(FRAMES):
        for v in range(VIEWS):
            assert_colour(grid[f][:, v * SIZE:(v + 1) * SIZE], f, v)


def test_each_view_mp4_holds_that_view_in_frame_order(written):
    for v in range(VIEWS):
        frames = decoded(written / f"view_{v:02d}.mp4")
        assert len(frames) == FRAMES
        for f in range(FRAMES):
            assert_colour(frames[f], f, v)


def test_frame_pngs_are_named_by_frame_and_view(written):
    for f in range(FRAMES):
        for v in range(VIEWS):
            image = np.asarray(Image.open(written / frame_name(f, v)).convert("RGB"))
            torch.testing.assert_close(centre(image), colour(f, v), atol=1 / 255, rtol=0)


def test_grid_webp_matches_the_grid(written):
    webp = Image.open(written / "grid.webp")
    for f in range(FRAMES):
        webp.seek(f)
        image = np.asarray(webp.convert("RGB"))
        for v in range(VIEWS):
            assert_colour(image[:, v * SIZE:(v + 1) * SIZE], f, v)


def test_generated_frames_are_the_decoded_latents_in_layout_order(monkeypatch):
    layout = VideoLayout(VIEWS, FRAMES)
    pipeline = StubPipeline()
    # latent i is filled with i; the stub VAE turns it into a flat image of value i / images
    pipeline.denoise = lambda settings, rig, on_step: (
        torch.arange(layout.images, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 4, 1, 1)
    )
    monkeypatch.setattr(pipeline_module, "decode_latents", lambda vae, latents: (
        latents[:, :3].repeat_interleave(8, 2).repeat_interleave(8, 3) / layout.images))
    video = pipeline.generate(GenerationSettings("a prompt", views=VIEWS, frames=FRAMES, width=8, height=8))
    assert video.frames.shape == (FRAMES, VIEWS, 8, 8, 3)
    for f in range(FRAMES):
        for v in range(VIEWS):
            assert torch.all(video.frames[f, v] == layout.index(f, v) / layout.images), (f, v)


def test_node_image_batches_keep_frame_and_view(fake_pack):
    video = fake_pack.video
    batch = coloured_frames().reshape(FRAMES * VIEWS, SIZE, SIZE, 3)  # the VAE Decode order: views innermost
    for v in range(VIEWS):
        (selected,) = video.SelectView.execute(batch, VIEWS, v).result
        assert selected.shape == (FRAMES, SIZE, SIZE, 3)
        for f in range(FRAMES):
            assert torch.equal(selected[f, 0, 0], colour(f, v))
    (grid,) = video.ViewsToGrid.execute(batch, VIEWS, 0).result
    assert grid.shape == (FRAMES, SIZE, VIEWS * SIZE, 3)
    for f in range(FRAMES):
        for v in range(VIEWS):
            assert torch.equal(grid[f, 0, v * SIZE], colour(f, v))
    (two_rows,) = video.ViewsToGrid.execute(batch, VIEWS, 2).result
    assert two_rows.shape == (FRAMES, 2 * SIZE, 2 * SIZE, 3)
    assert torch.equal(two_rows[1, SIZE, 0], colour(1, 2)) and torch.equal(two_rows[1, SIZE, SIZE], torch.zeros(3))
    with pytest.raises(ValueError, match="8 images are not a whole number of frames of 3 views"):
        video.split_views(batch[:8], VIEWS)

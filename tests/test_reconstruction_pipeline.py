"""The reconstruction pipeline's bookkeeping with stand-in networks whose Gaussians say which input they saw:
L4GM's view rule (pixels and rays), every frame out once and in order over seams, the interpolation's lerp start,
its rendered views 1-3 and its 3x frame order, and which frames the score compares."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vividzoo_core.cameras import moving_orbit, orbit
from vividzoo_core.checkpoints.reconstruction import L4GM, LGM
from vividzoo_core.layout import VideoLayout
from vividzoo_core.lgm_cameras import plucker_rays, ray_poses
from vividzoo_core.network.lgm_inputs import IMAGENET_MEAN, IMAGENET_STD
from vividzoo_core.reconstruction_inputs import ReconstructionInput
from vividzoo_core.reconstruction_pipeline import ReconstructionPipeline
from vividzoo_core.reconstruction_score import reconstruction_scores
from vividzoo_core.splatting import SplatCamera

SIZE = 32


class Tagging:
    """A stand-in network: one big opaque Gaussian per frame, grey at the mean red of the frame's view 0."""

    def __init__(self) -> None:
        self.calls: list[torch.Tensor] = []

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        self.calls.append(inputs.clone())
        red = inputs[0, :, 0, 0].mean(dim=(-1, -2)) * IMAGENET_STD[0] + IMAGENET_MEAN[0]  # (T,)
        gaussians = torch.tensor([0, 0, 0, 0.9, 0.3, 0.3, 0.3, 1, 0, 0, 0, 0, 0, 0], dtype=torch.float32)
        gaussians = gaussians.repeat(len(red), 1)
        gaussians[:, 11:] = red[:, None]
        return gaussians[None, :, None]  # (1, T, 1, 14)


def video(frames: int, cameras=None) -> ReconstructionInput:
    """Frame f view v a flat grey ``(4 f + v + 1) / (4 frames + 1)``: every image its own value."""
    values = (torch.arange(frames * 4, dtype=torch.float64) + 1) / (frames * 4 + 1)
    images = values.reshape(frames, 4, 1, 1, 1).expand(frames, 4, SIZE, SIZE, 3).float().clone()
    return ReconstructionInput(images, cameras if cameras is not None else orbit(4, 0.0), 8.0, Path("test"))


def grey(clip: ReconstructionInput, frame: int, view: int) -> float:
    return float(clip.frames[frame, view, 0, 0, 0])


def tags(gaussians: list[torch.Tensor]) -> list[float]:
    return [float(g[0, 11]) for g in gaussians]


def pipeline(kind: str, interpolation=None) -> tuple[ReconstructionPipeline, Tagging]:
    network = Tagging()
    return ReconstructionPipeline(kind, network, interpolation, input_size=SIZE), network


@pytest.mark.parametrize("frames", [1, 10, 16, 17, 40])
def test_l4gm_gives_every_input_frame_once_in_order(frames):
    clip = video(frames)
    recon, network = pipeline(L4GM)
    result = recon.reconstruct(clip, score=False)
    assert result.input_frames == list(range(frames))
    np.testing.assert_allclose(tags(result.gaussians), [grey(clip, f, 0) for f in range(frames)], atol=1e-6)
    assert all(call.shape[1] == 16 for call in network.calls)  # the model always sees its 16-frame window


def test_l4gm_views_1_to_3_and_their_rays_come_from_frame_0():
    """Moving cameras: view 0 at each frame's own pixels and camera, views 1-3 at frame 0's (L4GM's rule)."""
    clip = video(20, moving_orbit(4, 20, 0.0, turn=60.0))
    recon, network = pipeline(L4GM)
    recon.reconstruct(clip, score=False)
    poses, _ = ray_poses(clip.cameras)
    rays = plucker_rays(poses, SIZE)  # (frames, 4, 6, S, S)
    fed = [min(f, 19) for f in range(16)] + [min(15 + p, 19) for p in range(16)]
    inputs = torch.cat([call[0] for call in network.calls])  # (32, 4, 9, S, S)
    for position, frame in enumerate(fed):
        colours = inputs[position, :, 0, 0, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
        expected = [grey(clip, frame, 0)] + [grey(clip, 0, v) for v in (1, 2, 3)]
        np.testing.assert_allclose(colours.tolist(), expected, atol=1e-6)
        torch.testing.assert_close(inputs[position, 0, 3:], rays[frame, 0], atol=1e-6, rtol=0)
        torch.testing.assert_close(inputs[position, 1:, 3:], rays[0, 1:], atol=1e-6, rtol=0)


def test_moving_views_feed_each_frame_s_own_views_and_cameras():
    clip = video(3, moving_orbit(4, 3, 0.0, turn=30.0))
    recon, network = pipeline(L4GM)
    recon.reconstruct(clip, moving_views=True, score=False)
    rays = plucker_rays(ray_poses(clip.cameras)[0], SIZE)
    inputs = network.calls[0][0]
    for position in range(16):
        frame = min(position, 2)
        colours = inputs[position, :, 0, 0, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
        np.testing.assert_allclose(colours.tolist(), [grey(clip, frame, v) for v in range(4)], atol=1e-6)
        torch.testing.assert_close(inputs[position, :, 3:], rays[frame], atol=1e-6, rtol=0)


def test_lgm_runs_each_frame_alone_at_its_own_views():
    clip = video(3, moving_orbit(4, 3, 0.0, turn=30.0))
    recon, network = pipeline(LGM)
    result = recon.reconstruct(clip, score=False)
    assert [call.shape[1] for call in network.calls] == [1, 1, 1]
    rays = plucker_rays(ray_poses(clip.cameras)[0], SIZE)
    for frame, call in enumerate(network.calls):
        colours = call[0, 0, :, 0, 0, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
        np.testing.assert_allclose(colours.tolist(), [grey(clip, frame, v) for v in range(4)], atol=1e-6)
        torch.testing.assert_close(call[0, 0, :, 3:], rays[frame], atol=1e-6, rtol=0)
    np.testing.assert_allclose(tags(result.gaussians), [grey(clip, f, 0) for f in range(3)], atol=1e-6)


def test_interpolation_triples_the_frames_from_lerped_views_and_renders():
    clip = video(3)
    interp = Tagging()
    recon, _ = pipeline(L4GM, interp)
    result = recon.reconstruct(clip, score=True)
    # Output 3 i is input frame i; the two between start as lerp(i, i + 1, 1/3 and 2/3) of view 0.
    v = [grey(clip, f, 0) for f in range(3)]
    expected = [v[0], v[0] + (v[1] - v[0]) / 3, v[0] + 2 * (v[1] - v[0]) / 3, v[1],
                v[1] + (v[2] - v[1]) / 3, v[1] + 2 * (v[2] - v[1]) / 3, v[2]]
    np.testing.assert_allclose(tags(result.gaussians), expected, atol=1e-6)
    assert result.input_frames == [0, None, None, 1, None, None, 2] and result.fps == 24.0
    # Views 1-3 at the pair's ends are renders of L4GM's Gaussians of those frames, not the video's pixels: one
    # grey ball at the origin, 1.5 away, on white. The centre pixel is half a pixel off the ball's centre in x
    # and y; its footprint's variance is (0.3 focal / 1.5)^2 plus the 0.3 px^2 low-pass.
    variance = (0.3 * SplatCamera(np.eye(4)).focal(SIZE) / 1.5) ** 2 + 0.3
    alpha = 0.9 * math.exp(-0.5 * 0.5 / variance)
    assert [call.shape[1] for call in interp.calls] == [4, 4]
    for pair, call in enumerate(interp.calls):
        for position, frame in ((0, pair), (3, pair + 1)):
            centre = call[0, position, 1:, 0, SIZE // 2, SIZE // 2] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
            np.testing.assert_allclose(centre.tolist(), [alpha * v[frame] + 1 - alpha] * 3, atol=1e-5)
    # The score: outputs 0, 3 and 6 (the input frames) at the input cameras against the input views.
    cameras = [[SplatCamera(pose) for pose in ray_poses(clip.cameras.for_layout(VideoLayout(4, 3)))[0][0]]]
    expected = reconstruction_scores([result.gaussians[i] for i in (0, 3, 6)], clip.frames, cameras, (1, 1, 1))
    assert [entry.frame for entry in result.score.frames] == [0, 1, 2]
    assert [e.psnr for e in result.score.frames] == [e.psnr for e in expected.frames]
    assert len({e.psnr for e in expected.frames}) == 3

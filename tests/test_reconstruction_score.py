"""PSNR and SSIM on known answers and against torchmetrics; the per-frame reconstruction score."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from vividzoo_core.errors import VividZooError
from vividzoo_core.reconstruction_score import SSIM_K1, psnr, reconstruction_scores, ssim
from vividzoo_core.splatting import render, turntable


def test_psnr_known_answers() -> None:
    image = torch.rand(8, 8, 3)
    assert psnr(image, image.clone()) == math.inf
    zeros = torch.zeros(4, 4, 3, dtype=torch.float64)
    assert psnr(zeros + 0.1, zeros) == pytest.approx(20.0, abs=1e-12)  # MSE 0.01
    assert psnr(zeros + 0.5, zeros, data_range=2.0) == pytest.approx(10 * math.log10(4 / 0.25), abs=1e-12)


def test_ssim_known_answers() -> None:
    image = torch.rand(16, 16, 3, dtype=torch.float64)
    assert ssim(image, image.clone()) == pytest.approx(1.0, abs=1e-12)
    # constant images: no variance, only the luminance term (2ab + c1) / (a^2 + b^2 + c1)
    a, b, c1 = 0.3, 0.7, SSIM_K1**2
    flat = torch.ones(12, 12, 3, dtype=torch.float64)
    assert ssim(flat * a, flat * b) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-12)


def test_ssim_equals_torchmetrics() -> None:
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(40, 32, 3, generator=generator, dtype=torch.float64)
    other = (image + 0.2 * torch.randn(40, 32, 3, generator=generator, dtype=torch.float64)).clamp(0, 1)
    theirs = structural_similarity_index_measure(other.permute(2, 0, 1)[None], image.permute(2, 0, 1)[None],
                                                 data_range=1.0)
    # both float64 with the same window and constants: only summation order differs
    assert ssim(other, image) == pytest.approx(theirs.item(), abs=1e-10)
    assert 0.1 < ssim(other, image) < 0.9  # a real difference, not a trivial 0 or 1


def test_scores_of_renders_against_themselves_and_with_a_known_error() -> None:
    generator = torch.Generator().manual_seed(0)
    n = 40
    unrotated = torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4)
    frames = [torch.cat([torch.rand(n, 3, generator=generator) - 0.5, torch.rand(n, 1, generator=generator),
                         torch.rand(n, 3, generator=generator) * 0.1 + 0.01, unrotated,
                         torch.rand(n, 3, generator=generator)], dim=1) for _ in range(2)]
    cameras = [turntable(4), turntable(4, elevation=20)]  # a moving rig: each frame its own row
    views = torch.stack([torch.stack([render(g, c, 16).image.clamp(0, 1) for c in row])
                         for g, row in zip(frames, cameras)])
    perfect = reconstruction_scores(frames, views, cameras)
    assert [f.psnr for f in perfect.frames] == [math.inf, math.inf]
    assert [f.ssim for f in perfect.frames] == pytest.approx([1.0, 1.0], abs=1e-12)
    assert perfect.to_json()["psnr_db"] == [None, None]
    # frame 1, view 2 darker by 0.05 everywhere (renders are >= 0.05: on white, colours are not that dark)
    assert views[1, 2].min() >= 0.05
    shifted = views.clone()
    shifted[1, 2] -= 0.05
    scores = reconstruction_scores(frames, shifted, cameras)
    assert scores.frames[0].psnr == math.inf
    # MSE over the frame's 4 views = 0.05^2 / 4; float32 images: the shift itself is rounded to ~1e-8
    assert scores.frames[1].psnr == pytest.approx(10 * math.log10(4 / 0.05**2), abs=1e-4)
    assert scores.frames[1].ssim < 1.0


def test_renders_are_clamped_to_0_1_as_lgm_s() -> None:
    # colours beyond 1 (a PLY from elsewhere) render above 1 in the middle; the clamped render is all white
    bright = torch.tensor([[0, 0, 0, 0.9, 0.2, 0.2, 0.2, 1, 0, 0, 0, 2.0, 2.0, 2.0]])
    assert render(bright, turntable(1)[0], 16).image.max() > 1.5
    score = reconstruction_scores([bright], torch.ones(1, 1, 16, 16, 3), [turntable(1)])
    assert score.frames[0].psnr == math.inf


def test_mismatched_inputs_are_refused() -> None:
    frames = [torch.zeros(0, 14)]
    with pytest.raises(VividZooError, match="frames"):
        reconstruction_scores(frames * 2, torch.zeros(1, 4, 16, 16, 3), [turntable(4)])
    with pytest.raises(VividZooError, match="cameras"):
        reconstruction_scores(frames, torch.zeros(1, 4, 16, 16, 3), [turntable(3)])
    with pytest.raises(VividZooError, match="shapes"):
        psnr(torch.zeros(2, 2, 3), torch.zeros(2, 3, 3))

"""How faithful reconstructed Gaussians are to the views they came from: PSNR and SSIM per frame.

:func:`reconstruction_scores` renders each frame's Gaussians at the input cameras (:mod:`vividzoo_core.splatting`)
and compares them with the input views. The perceptual score is SSIM, not LPIPS: LPIPS needs pretrained network
weights, and nothing may download at run time; SSIM is a fixed formula (Wang et al. 2004) with the usual
11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, at every pixel with the image mirrored at its edges
(reflect padding), variances clamped at 0, per colour channel, averaged: torchmetrics'
``structural_similarity_index_measure`` with its defaults, which the tests check it equals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import VividZooError
from .splatting import SplatCamera, render

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def psnr(image: torch.Tensor, reference: torch.Tensor, data_range: float = 1.0) -> float:
    """``10 log10(data_range^2 / MSE)`` over all values, in float64; ``inf`` for identical images."""
    _check_pair(image, reference)
    mse = torch.mean((image.double() - reference.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def ssim(image: torch.Tensor, reference: torch.Tensor, data_range: float = 1.0) -> float:
    """Mean SSIM of two ``(H, W, C)`` images (``H, W >= 11``), in float64; 1 for identical images."""
    _check_pair(image, reference)
    if image.ndim != 3 or min(image.shape[:2]) < SSIM_WINDOW:
        raise VividZooError(f"SSIM needs (H, W, C) images of at least {SSIM_WINDOW} px, got {tuple(image.shape)}")
    x = image.double().permute(2, 0, 1)[:, None]  # (C, 1, H, W): channels as a batch
    y = reference.double().permute(2, 0, 1)[:, None]
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    line = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    line = line / line.sum()
    window = (line[:, None] * line[None, :]).to(x.device)[None, None]
    pad = (SSIM_WINDOW - 1) // 2
    x, y = (F.pad(t, (pad, pad, pad, pad), mode="reflect") for t in (x, y))
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
    var_x = (F.conv2d(x * x, window) - mu_x**2).clamp(min=0)
    var_y = (F.conv2d(y * y, window) - mu_y**2).clamp(min=0)
    cov = F.conv2d(x * y, window) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return score.mean().item()


@dataclass
class FrameScore:
    frame: int
    psnr: float
    """dB, over all views of the frame; ``inf`` where the renders equal the views exactly."""
    ssim: float
    """Mean over the views of the frame."""


@dataclass
class ReconstructionScore:
    frames: list[FrameScore]

    @property
    def mean_psnr(self) -> float:
        return sum(f.psnr for f in self.frames) / len(self.frames)

    @property
    def mean_ssim(self) -> float:
        return sum(f.ssim for f in self.frames) / len(self.frames)

    def to_json(self) -> dict:
        """For ``info.json``; an infinite PSNR (a perfect match) is written as null (JSON has no infinity)."""
        def number(value: float) -> float | None:
            return None if math.isinf(value) else round(value, 4)

        return {
            "renders_vs_input_views": "Gaussians rendered at the input cameras against the input views",
            "psnr_db": [number(f.psnr) for f in self.frames],
            "ssim": [number(f.ssim) for f in self.frames],
            "mean_psnr_db": number(self.mean_psnr),
            "mean_ssim": number(self.mean_ssim),
        }


def reconstruction_scores(gaussians: Sequence[torch.Tensor], views: torch.Tensor,
                          cameras: Sequence[Sequence[SplatCamera]], background: Sequence[float] = (1.0, 1.0, 1.0),
                          backend: str = "auto") -> ReconstructionScore:
    """Scores each frame: its ``(N, 14)`` Gaussians rendered at ``cameras[frame][view]`` (a single row of cameras
    serves every frame) against ``views`` ``(frames, views, H, W, 3)`` in [0, 1], on ``background`` (LGM: white).

    The renders are clamped to [0, 1] as LGM's are. PSNR is over all views of a frame at once, SSIM the mean
    of the views'.
    """
    if views.ndim != 5 or views.shape[-1] != 3:
        raise VividZooError(f"views must be (frames, views, H, W, 3), got {tuple(views.shape)}")
    count, view_count, height, width = views.shape[:4]
    if len(gaussians) != count:
        raise VividZooError(f"{len(gaussians)} frames of Gaussians but {count} frames of views")
    if len(cameras) not in (1, count) or any(len(row) != view_count for row in cameras):
        raise VividZooError(
            f"cameras must be one row of {view_count} views or {count} rows of {view_count}, got "
            f"{[len(row) for row in cameras]}"
        )
    scores = []
    for frame, frame_gaussians in enumerate(gaussians):
        row = cameras[frame if len(cameras) > 1 else 0]
        renders = torch.stack([
            render(frame_gaussians, camera, height, width, background, backend).image.clamp(0, 1).cpu()
            for camera in row
        ])
        reference = views[frame].to(device="cpu", dtype=renders.dtype)
        scores.append(FrameScore(frame, psnr(renders, reference),
                                 sum(ssim(renders[v], reference[v]) for v in range(view_count)) / view_count))
    return ReconstructionScore(scores)


def _check_pair(image: torch.Tensor, reference: torch.Tensor) -> None:
    if image.shape != reference.shape:
        raise VividZooError(f"cannot compare images of shapes {tuple(image.shape)} and {tuple(reference.shape)}")

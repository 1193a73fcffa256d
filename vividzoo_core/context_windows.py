"""Sliding context windows over time, for videos longer than the motion module sees at once.

Each denoising step predicts the noise of overlapping windows of whole frames (all views of a frame
stay together, so multi-view attention is unchanged) and blends the overlaps with weights that fall
off towards each window's edges, hiding the seams.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import VividZooError
from .layout import VideoLayout


def frame_windows(frames: int, length: int, overlap: int) -> list[list[int]]:
    """Windows of ``length`` consecutive frames, each overlapping the next by ``overlap``, covering all."""
    if length < 1 or not 0 <= overlap < length:
        raise VividZooError(
            f"context windows need length >= 1 and 0 <= overlap < length, got length {length}, overlap {overlap}"
        )
    if frames <= length:
        return [list(range(frames))]
    stride = length - overlap
    starts = list(range(0, frames - length, stride)) + [frames - length]
    return [list(range(start, start + length)) for start in starts]


def window_weights(length: int) -> torch.Tensor:
    """Pyramid weights: highest in the middle of a window, never zero at its ends."""
    position = torch.arange(length, dtype=torch.float32)
    return torch.minimum(position + 1, length - position)


def blend_windows(
    predict: Callable[[torch.Tensor, list[int]], torch.Tensor],
    x: torch.Tensor,
    layout: VideoLayout,
    windows: list[list[int]],
) -> torch.Tensor:
    """Runs ``predict(x[window batch], window_frames)`` on each window and blends the results.

    ``x`` holds whole copies of the video in layout order; so does each window's slice.
    """
    if len(windows) == 1 and len(windows[0]) == layout.frames:
        return predict(x, windows[0])
    copies = layout.copies(x.shape[0])
    total = None
    weight_sum = torch.zeros(x.shape[0], device=x.device, dtype=torch.float32)
    for window in windows:
        index = layout.batch_indices(window, copies).to(x.device)
        out = predict(x[index], window)
        weights = window_weights(len(window)).to(x.device).repeat_interleave(layout.views).repeat(copies)
        if total is None:
            total = torch.zeros((x.shape[0], *out.shape[1:]), device=out.device, dtype=torch.float32)
        total.index_add_(0, index, out.float() * weights.view(-1, *[1] * (out.dim() - 1)))
        weight_sum.index_add_(0, index, weights)
    if bool((weight_sum == 0).any()):
        raise VividZooError("context windows leave some frames uncovered")
    return (total / weight_sum.view(-1, *[1] * (total.dim() - 1))).to(x.dtype)

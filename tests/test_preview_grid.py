"""The sampling preview's grid: the views of one frame, placed as grid.mp4 places them."""

from __future__ import annotations

import torch

from vividzoo_core.layout import VideoLayout
from vividzoo_core.video import frame_grid


def numbered(layout: VideoLayout, copies: int = 1, channels: int = 4, size: int = 2) -> torch.Tensor:
    """A batch in layout order whose image (copy c, frame f, view v) is filled with 100c + 10f + v + 1."""
    values = [100 * c + 10 * f + v + 1
              for c in range(copies) for f in range(layout.frames) for v in range(layout.views)]
    return torch.tensor(values, dtype=torch.float32)[:, None, None, None].expand(-1, channels, size, size).clone()


def test_four_views_of_a_frame_side_by_side():
    layout = VideoLayout(4, 3)
    grid = frame_grid(numbered(layout, copies=2), layout, frame=2)
    assert grid.shape == (1, 4, 2, 8)
    assert grid[0, 0, 0, ::2].tolist() == [21, 22, 23, 24]  # frame 2's views 0..3 of the first copy, left to right
    assert (grid == grid[:, :1]).all()  # every channel the same image


def test_more_views_wrap_into_rows_with_black_cells():
    layout = VideoLayout(5, 2)
    grid = frame_grid(numbered(layout), layout, frame=1)
    assert grid.shape == (1, 4, 4, 6)  # 3 columns, 2 rows
    assert grid[0, 0, ::2, ::2].tolist() == [[11, 12, 13], [14, 15, 0]]

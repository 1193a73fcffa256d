"""How a video longer or shorter than L4GM's window goes through it: runs, seams, interpolation pairs.

The original ``infer_4d.py`` (``--num_frames 16``) runs windows of 16 frames, each starting at the previous
run's last frame (``start_t += num_frames - 1``), reads past the end as the last frame repeated, and keeps a
later run's outputs ``[1:end_t]``. Its bookkeeping has two faults this module does not have:

- the first run keeps all 16 outputs even when the video is shorter: a 10-frame video gives 16 Gaussian frames,
  the last one 7 times (with interpolation 46 frames, 19 of them frame 9);
- with interpolation, every later run interpolates from its first (overlap) frame again, so the seam frame comes
  out twice, and it stops one pair short (``range(len(kept) - 1)`` over the window's positions), so a run's last
  step is never interpolated. With 40 frames: frame 15 twice, nothing between frames 29 and 30, and nothing after
  frame 38: the last frame never comes out.

Here (:func:`l4gm_runs`, :func:`interpolation_pairs`) every input frame comes out exactly once and in order;
with interpolation, output ``3 i`` is input frame ``i`` and every pair of neighbours gets its 2 in-between frames.
The model sees the same windows as in the original (same starts, same repeated last frame as padding), so the
kept outputs are the same numbers; only the bookkeeping differs. The original's fps reduction to 15 fps
(``downsample_rate``) is not repeated: our videos are 8 fps.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import VividZooError

WINDOW = 16
"""``--num_frames 16`` of the README's 4D command."""


@dataclass(frozen=True)
class Run:
    frames: tuple[int, ...]
    """Input frame fed at each of the window's positions (the last frame repeated past the end)."""
    keep: tuple[int, ...]
    """Window positions whose Gaussians are output, in order."""

    @property
    def outputs(self) -> tuple[int, ...]:
        return tuple(self.frames[p] for p in self.keep)


def l4gm_runs(total: int, window: int = WINDOW) -> list[Run]:
    """Runs over ``total`` frames: windows start at 0, ``window - 1``, ``2 (window - 1)`` ...; each later run's
    first position is the previous run's last frame (fed again for continuity, not output twice)."""
    if total < 1 or window < 2:
        raise VividZooError(f"L4GM needs at least 1 frame and a window of at least 2, got {total} and {window}")
    runs, start = [], 0
    while True:
        frames = tuple(min(start + p, total - 1) for p in range(window))
        first = 0 if start == 0 else 1
        runs.append(Run(frames, tuple(range(first, min(window, total - start)))))
        if start + window >= total:
            return runs
        start += window - 1


@dataclass(frozen=True)
class Pair:
    start: int
    end: int
    keep: tuple[int, ...]
    """Positions of the interpolation model's 4 outputs kept (frame ``start`` at 0, ``end`` at 3)."""


def interpolation_pairs(total: int) -> list[Pair]:
    """One interpolation window per pair of neighbouring output frames; each keeps positions 0, 1, 2 and the
    last pair also 3, so the ``3 (total - 1) + 1`` outputs are frame 0, 1/3, 2/3, 1, ... ``total - 1``, once."""
    if total < 2:
        return []
    return [Pair(i, i + 1, (0, 1, 2, 3) if i == total - 2 else (0, 1, 2)) for i in range(total - 1)]

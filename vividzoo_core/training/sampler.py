"""The order in which training samples are drawn: per epoch, per process, resumable."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


class EpochSampler(torch.utils.data.Sampler):
    """Endless ``(epoch, index)`` keys: a fresh permutation per epoch, this process's equal share of it.

    The samples this process has already taken are the whole state (``start``), so a run resumes
    exactly where it stopped. Each process takes ``size // processes`` samples an epoch (the remainder
    waits for the next epoch).
    """

    def __init__(self, size: int, seed: int, rank: int = 0, processes: int = 1, start: int = 0) -> None:
        self.size, self.seed, self.rank, self.processes = size, seed, rank, processes
        self.epoch, self.position = divmod(start, len(self))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        while True:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
            mine = order[self.rank::self.processes][: len(self)]
            while self.position < len(mine):
                self.position += 1
                yield self.epoch, int(mine[self.position - 1])
            self.epoch, self.position = self.epoch + 1, 0

    def __len__(self) -> int:
        return self.size // self.processes

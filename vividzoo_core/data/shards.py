"""Splitting a long job (rendering, encoding) over machines: part ``I`` of ``N``, disjoint and complete."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

Item = TypeVar("Item")


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def select(self, items: Sequence[Item], name: Callable[[Item], str]) -> list[Item]:
        """Every ``count``-th item in ``name`` order from ``index``: whatever order the items come in,
        the shards are disjoint and together complete."""
        return sorted(items, key=name)[self.index::self.count]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

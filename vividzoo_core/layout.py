"""Where each image of a multi-view video sits in a batch.

One order everywhere (latents, decoded frames, cameras, the UNet's batch): ``(copies, frames, views)``
flattened with the views innermost, so image ``(c, f, v)`` is at ``(c * frames + f) * views + v``.

- The K views of one frame are neighbours, which is what MVDream's multi-view attention expects
  (``(b v) l c -> b (v l) c``).
- A sampler may stack several copies of the video in one batch (uncond/cond for guidance, several
  conds, memory splits): ``copies = batch // (views * frames)``, never assumed to be 2.
- The motion modules see each (copy, view) as its own clip of ``frames`` images; views never mix there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange

from .errors import VividZooError


@dataclass(frozen=True)
class VideoLayout:
    views: int
    frames: int

    def __post_init__(self) -> None:
        for name in ("views", "frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise VividZooError(f"{name} must be a whole number of at least 1, got {value!r}")

    @property
    def images(self) -> int:
        """Images in one copy of the video."""
        return self.views * self.frames

    def copies(self, batch_size: int) -> int:
        """How many copies of the video a batch holds; refuses a batch that is not whole copies."""
        if batch_size < self.images or batch_size % self.images:
            raise VividZooError(
                f"a batch of {batch_size} images is not a whole number of multi-view videos of "
                f"{self.views} views x {self.frames} frames = {self.images} images; "
                f"make the latent batch exactly views x frames = {self.images}"
            )
        return batch_size // self.images

    def index(self, frame: int, view: int, copy: int = 0) -> int:
        return (copy * self.frames + frame) * self.views + view

    def batch_indices(self, frames: list[int], copies: int) -> torch.Tensor:
        """Batch positions of the given frames (all their views) in every copy, in layout order."""
        frame_index = torch.as_tensor(frames, dtype=torch.long)
        copy_index = torch.arange(copies, dtype=torch.long)
        view_index = torch.arange(self.views, dtype=torch.long)
        positions = (copy_index[:, None, None] * self.frames + frame_index[None, :, None]) * self.views
        return (positions + view_index[None, None, :]).reshape(-1)

    def group_views(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(k f v) l c -> (k f) (v l) c``: one attention sequence per frame, over all its views."""
        return rearrange(tokens, "(n v) l c -> n (v l) c", v=self.views)

    def ungroup_views(self, tokens: torch.Tensor) -> torch.Tensor:
        return rearrange(tokens, "n (v l) c -> (n v) l c", v=self.views)

    def group_frames(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(k f v) l c -> (k v l) f c``: one sequence over time per (copy, view, pixel)."""
        return rearrange(tokens, "(k f v) l c -> (k v l) f c", f=self.frames, v=self.views)

    def ungroup_frames(self, tokens: torch.Tensor, pixels: int) -> torch.Tensor:
        return rearrange(tokens, "(k v l) f c -> (k f v) l c", v=self.views, l=pixels)

    def split(self, images: torch.Tensor) -> torch.Tensor:
        """``(k f v) ... -> k f v ...`` for a batch of whole copies."""
        copies = self.copies(images.shape[0])
        return images.reshape(copies, self.frames, self.views, *images.shape[1:])

"""Animate3D's attention math (MV-VDM, yanqinJiang/Animate3D), in plain PyTorch.

Animate3D is MVDream v1.5 + AnimateDiff motion modules (diffusers' v1-5-2 adapter) + IP-Adapter SD 1.5,
with three trained additions, all found in ``animatediff/models/attention_processor.py``:

- Reference attention in MVDream's multi-view self-attention (``MVDreamI2VXFormersAttnProcessor``): besides
  the usual attention over all views of a frame, queries from every frame (own projection ``to_q_i2v``)
  attend to the keys/values of the FIRST frame (all its views, the block's own ``to_k``/``to_v``); the
  result goes through ``to_out_i2v`` and is added before the block's ``to_out``. The first frame holds the
  clean latents of the 4 condition images, so every frame can look at them.
- Spatio-temporal motion attention (``SpatioTemporalI2VXFormersAttnProcessor``), in each of the two
  attentions of every motion module: besides the temporal attention, a spatial attention over all views
  and pixels of one frame (own ``to_{q,k,v,out}_sp``) on the un-encoded tokens plus a 2-D sine encoding of
  (row, column); the temporal branch gets the 1-D sinusoid the processor restores (``time_pos_embed``), as
  the block's own ``pos_embed`` is removed. The two are mixed by a learned alpha blender:
  ``sigmoid(m) * spatial + (1 - sigmoid(m)) * temporal``.
- The IP-Adapter's decoupled cross-attention lives in ``diffusers_host/animate3d.py`` (diffusers' layout).

The original sizes the spatial attention for 256 px (``sample_size = 256`` in ``inference.py``); here the
grid comes from the actual feature map, so it is the same at 256 px and right at every other size.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from einops import rearrange
from torch import nn

from ..layout import VideoLayout
from .attention import AttentionFunction, sdpa_attention
from .motion_module import TemporalSelfAttention, TokenGrid


def sine_position_encoding_2d(height: int, width: int, channels: int) -> torch.Tensor:
    """``(height * width, channels)``: Animate3D's ``SinePositionalEncoding2D(channels // 2, normalize=True)``
    (DETR's encoding): rows then columns, each normalised to ``(0, 2 pi]`` and encoded as interleaved
    ``sin, cos`` pairs with frequencies ``10000 ** (2 * (i // 2) / (channels // 2))``."""
    features = channels // 2
    rows = torch.arange(1, height + 1, dtype=torch.float32) / (height + 1e-6) * 2 * math.pi
    columns = torch.arange(1, width + 1, dtype=torch.float32) / (width + 1e-6) * 2 * math.pi
    frequencies = 10000 ** (2 * (torch.arange(features, dtype=torch.float32) // 2) / features)

    def encode(positions: torch.Tensor) -> torch.Tensor:
        angles = positions[:, None] / frequencies
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).reshape(len(positions), -1)

    row_code, column_code = encode(rows), encode(columns)
    grid = torch.cat([row_code[:, None].expand(-1, width, -1), column_code[None].expand(height, -1, -1)], dim=-1)
    return grid.reshape(height * width, 2 * features)


class SpatioTemporalAttention(TemporalSelfAttention):
    """One attention of an Animate3D motion module: temporal (AnimateDiff's) and spatial, alpha-blended.

    Input and output ``(copies * views * pixels, frames, C)`` as :class:`TemporalSelfAttention`; the spatial
    branch needs the :class:`TokenGrid`. Parameters are named after the checkpoint (processor keys without
    ``processor.``; ``time_pos_embed.pe`` is the inherited ``pos_encoder.pe``, ``alpha_blender.mix_factor`` is
    ``mix_factor``).
    """

    def __init__(self, channels: int, heads: int, pe_length: int, ops: Any, attention: AttentionFunction) -> None:
        super().__init__(channels, heads, pe_length, ops, attention)
        self.to_q_sp = ops.Linear(channels, channels, bias=False)
        self.to_k_sp = ops.Linear(channels, channels, bias=False)
        self.to_v_sp = ops.Linear(channels, channels, bias=False)
        self.to_out_sp = ops.Linear(channels, channels)
        self.mix_factor = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, grid: TokenGrid | None = None) -> torch.Tensor:
        if grid is None:
            raise ValueError("Animate3D's motion attention needs the token grid (views, height, width)")
        alpha = torch.sigmoid(self.mix_factor).to(x.dtype)
        return alpha * self.spatial(x, grid) + (1 - alpha) * super().forward(x)

    def spatial(self, x: torch.Tensor, grid: TokenGrid) -> torch.Tensor:
        """Attention over all views and pixels of one frame, with the 2-D position encoding added first."""
        views, frames = grid.layout.views, grid.layout.frames
        tokens = rearrange(x, "(k v l) f c -> (k f) v l c", v=views, l=grid.pixels)
        encoding = sine_position_encoding_2d(grid.height, grid.width, x.shape[-1]).to(x.device, x.dtype)
        tokens = (tokens + encoding).flatten(1, 2)
        out = self.to_out_sp(self.attention(self.to_q_sp(tokens), self.to_k_sp(tokens), self.to_v_sp(tokens),
                                            self.heads))
        return rearrange(out, "(k f) (v l) c -> (k v l) f c", f=frames, v=views)


def reference_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, layout: VideoLayout,
    attention: AttentionFunction = sdpa_attention,
) -> torch.Tensor:
    """Queries of every frame attend to the keys/values of frame 0 (all its views) of the same copy.

    ``q, k, v``: ``(copies * frames * views, tokens, C)`` in layout order; returns the shape of ``q``.
    Frames are folded into the query length: each query row attends independently, so this equals
    repeating frame 0's keys for every frame (as the original does) without the copies.
    """
    copies = layout.copies(q.shape[0])
    per_frame = layout.views * q.shape[1]
    queries = layout.group_views(q).reshape(copies, layout.frames * per_frame, q.shape[-1])
    first_keys = layout.group_views(k).reshape(copies, layout.frames, per_frame, k.shape[-1])[:, 0]
    first_values = layout.group_views(v).reshape(copies, layout.frames, per_frame, v.shape[-1])[:, 0]
    out = attention(queries, first_keys, first_values, heads)
    return layout.ungroup_views(out.reshape(copies * layout.frames, per_frame, q.shape[-1]))

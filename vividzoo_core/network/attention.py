"""Attention with heads packed in the channel dim, and MVDream's multi-view regrouping.

Attention functions take ``q, k, v`` of shape ``(batch, tokens, heads * head_dim)`` and the head
count, and return the same shape. That is ComfyUI's ``optimized_attention`` contract, so the host
can pass its own kernel in place of :func:`sdpa_attention`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..layout import VideoLayout

AttentionFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Softmax attention through PyTorch's fused scaled-dot-product kernel."""
    batch, tokens, width = q.shape
    q, k, v = (t.reshape(t.shape[0], t.shape[1], heads, width // heads).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(batch, tokens, width)


def multiview_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    heads: int,
    layout: VideoLayout,
    attention: AttentionFunction = sdpa_attention,
) -> torch.Tensor:
    """Self-attention over the tokens of all views of one frame, as MVDream's ``attn1`` does."""
    if layout.views == 1:
        return attention(q, k, v, heads)
    grouped = attention(layout.group_views(q), layout.group_views(k), layout.group_views(v), heads)
    return layout.ungroup_views(grouped)

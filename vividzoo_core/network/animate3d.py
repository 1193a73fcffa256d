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
- The IP-Adapter's decoupled cross-attention (``IPAdapterXFormersAttnProcessor``) and its image projection.

The hosts (``diffusers_host/animate3d.py``, ComfyUI's nodes) call the functions here with their own projections
and attention kernel, so each piece of math exists once. :class:`Animate3DAttentionLayers` holds the trained
attention weights for a host whose UNet has no place for them (ComfyUI).

The original sizes the spatial attention for 256 px (``sample_size = 256`` in ``inference.py``); here the
grid comes from the actual feature map, so it is the same at 256 px and right at every other size.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from einops import rearrange
from torch import nn

from ..checkpoints.animate3d import Animate3DCheckpoint
from ..checkpoints.ip_adapter import IMAGE_TOKENS, IPAdapterCheckpoint
from ..errors import CheckpointError, VividZooError
from ..layout import VideoLayout
from .attention import AttentionFunction, multiview_attention, sdpa_attention
from .motion_module import MotionModuleSet, TemporalSelfAttention, TokenGrid

ANIMATE3D_MOTION_VERSION = "Animate3D"
BLOCK_PATH = re.compile(
    r"^(down_blocks|up_blocks|mid_block)(?:\.(\d+))?\.attentions\.(\d+)\.transformer_blocks\.(\d+)$")


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


def reference_multiview_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, reference_queries: torch.Tensor, heads: int,
    layout: VideoLayout, to_out_reference: nn.Module, attention: AttentionFunction = sdpa_attention,
) -> torch.Tensor:
    """Animate3D's ``attn1`` before the block's ``to_out``: MVDream's multi-view attention plus ``to_out_i2v`` of
    the reference attention, whose queries (``to_q_i2v`` of the block input) attend to frame 0's keys/values."""
    out = multiview_attention(q, k, v, heads, layout, attention)
    return out + to_out_reference(reference_attention(reference_queries, k, v, heads, layout, attention))


def decoupled_cross_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, image_k: torch.Tensor, image_v: torch.Tensor, heads: int,
    scale: float, attention: AttentionFunction = sdpa_attention,
) -> torch.Tensor:
    """The IP-Adapter's ``attn2`` before ``to_out``: ``attn(q, text) + scale * attn(q, image tokens)``, the image
    keys/values being ``to_k_ip`` / ``to_v_ip`` of the image tokens of each batch item."""
    return attention(q, k, v, heads) + scale * attention(q, image_k, image_v, heads)


class ImageProjection(nn.Module):
    """IP-Adapter's image projection (diffusers ``ImageProjection``): ``LayerNorm(Linear(embedding))`` as 4 tokens."""

    def __init__(self, embed_dim: int, context_dim: int, tokens: int = IMAGE_TOKENS, ops: Any = nn) -> None:
        super().__init__()
        self.tokens = tokens
        self.image_embeds = ops.Linear(embed_dim, tokens * context_dim)
        self.norm = ops.LayerNorm(context_dim)

    def forward(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """``(batch, embed_dim)`` CLIP image embeddings -> ``(batch, tokens, context_dim)``."""
        tokens = self.image_embeds(image_embeds.to(self.image_embeds.weight.dtype))
        return self.norm(tokens.reshape(image_embeds.shape[0], self.tokens, -1))


class TrainedAttention(nn.Module):
    """The trained weights Animate3D adds to one spatial transformer block: the reference attention's ``to_q_i2v``
    / ``to_out_i2v`` (``attn1``) and the IP-Adapter's ``to_k_ip`` / ``to_v_ip`` (``attn2``)."""

    def __init__(self, channels: int, context_dim: int, ops: Any = nn) -> None:
        super().__init__()
        self.to_q_i2v = ops.Linear(channels, channels, bias=False)
        self.to_out_i2v = ops.Linear(channels, channels)
        self.to_k_ip = ops.Linear(context_dim, channels, bias=False)
        self.to_v_ip = ops.Linear(context_dim, channels, bias=False)


def block_order(path: str) -> tuple[int, int, int, int]:
    """Sort key of a transformer block's diffusers path in diffusers' ``attn_processors`` order (down blocks, up
    blocks, then the mid block), which numbers the IP-Adapter's layers."""
    match = BLOCK_PATH.match(path)
    if match is None:
        raise ValueError(f"not a spatial transformer block path: {path}")
    kind, level, attention, depth = match.groups()
    return ("down_blocks", "up_blocks", "mid_block").index(kind), int(level or 0), int(attention), int(depth)


class Animate3DAttentionLayers(nn.Module):
    """:class:`TrainedAttention` of every spatial transformer block, keyed by its diffusers path with ``.`` as ``_``
    (``down_blocks_0_attentions_0_transformer_blocks_0``), for hosts whose UNet has no processors to hold them."""

    def __init__(self, widths: dict[str, int], context_dim: int, ops: Any = nn) -> None:
        super().__init__()
        self.paths = sorted(widths, key=block_order)
        self.blocks = nn.ModuleDict({path.replace(".", "_"): TrainedAttention(widths[path], context_dim, ops)
                                     for path in self.paths})

    def __getitem__(self, path: str) -> TrainedAttention:
        return self.blocks[path.replace(".", "_")]

    @classmethod
    def from_checkpoints(cls, animate3d: Animate3DCheckpoint, ip_adapter: IPAdapterCheckpoint | None,
                         ops: Any = nn) -> Animate3DAttentionLayers:
        """Every ``i2v`` tensor of ``animate3d`` and every layer of ``ip_adapter`` (or of the whole-UNet form of
        ``animate3d``, which holds them: the file then wins, as in the original), strictly."""
        suffix = ".attn1.processor.to_q_i2v.weight"
        widths = {k[: -len(suffix)]: t.shape[0] for k, t in animate3d.processors.items() if k.endswith(suffix)}
        if animate3d.image_projection is not None:
            context = animate3d.image_projection["norm.weight"].shape[0]
        elif ip_adapter is not None:
            context = ip_adapter.context_dim
        else:
            raise VividZooError(f"{animate3d.path.name} holds only Animate3D's modules; it also needs the IP-Adapter "
                                f"(ip-adapter_sd15.bin or .safetensors)")
        layers = cls(widths, context, ops)
        weights = {}
        for key, tensor in animate3d.processors.items():
            path, _, name = key.partition(".attn1.processor." if ".attn1." in key else ".attn2.processor.")
            weights[f"blocks.{path.replace('.', '_')}.{name.replace('_ip.0.', '_ip.')}"] = tensor
        if animate3d.image_projection is None:
            ip_adapter.check_fits(context, [widths[path] for path in layers.paths])
            for path, (to_k, to_v) in zip(layers.paths, ip_adapter.layers):
                weights[f"blocks.{path.replace('.', '_')}.to_k_ip.weight"] = to_k
                weights[f"blocks.{path.replace('.', '_')}.to_v_ip.weight"] = to_v
        own = layers.state_dict()
        require_exact(animate3d.path, "attention", set(own), weights, own)
        layers.load_state_dict(weights)
        return layers


def animate3d_motion_modules(checkpoint: Animate3DCheckpoint, ops: Any = nn,
                             attention: AttentionFunction = sdpa_attention) -> MotionModuleSet:
    """Animate3D's 21 motion modules with every tensor of the file loaded (alignment layers off)."""
    modules = MotionModuleSet(checkpoint.channels, checkpoint.pe_length, ANIMATE3D_MOTION_VERSION, ops=ops,
                              attention=attention, attention_block=SpatioTemporalAttention, norm_over_frames=True)
    expected = {k for k in modules.state_dict() if k.rsplit(".", 2)[-2] not in ("align_3d_to_2d", "align_2d_to_3d")}
    require_exact(checkpoint.path, "motion-module", expected, checkpoint.motion, modules.state_dict())
    modules.load_state_dict(checkpoint.motion, strict=False)
    modules.load_alignment(None)
    return modules


def require_exact(path, part: str, expected: set[str], weights: dict[str, torch.Tensor],
                  shapes: dict[str, torch.Tensor]) -> None:
    """Refuses ``weights`` unless they are exactly the ``expected`` names, each of the shape in ``shapes``."""
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
    if missing or unexpected:
        raise CheckpointError(path, f"the {part} tensors do not fit Animate3D's layout (missing {missing[:3]}, "
                                    f"unexpected {unexpected[:3]})")
    for key, tensor in weights.items():
        if tuple(tensor.shape) != tuple(shapes[key].shape):
            raise CheckpointError(path, f"{key} has shape {tuple(tensor.shape)}, Animate3D's layout needs "
                                        f"{tuple(shapes[key].shape)}")

"""AnimateDiff's temporal transformer with Vivid-ZOO's alignment layers.

Follows the original AnimateDiff module (each frame is GroupNorm-ed on its own, unlike diffusers'
``AnimateDiffTransformer3D``), so outputs match the released weights. Attribute names mirror the
checkpoint keys, so a motion-module file loads with ``load_state_dict`` as is.

Alignment (the paper's contribution), one pair per module, zero-initialised:
- 3D->2D: ``Linear(C, C)`` beside ``proj_in``: ``h = proj_in(n) + align_3d_to_2d(n)``
- 2D->3D: ``Linear(C, C)`` beside ``proj_out``: ``o = proj_out(h) + align_2d_to_3d(h)``
With zero alignment the module is exactly the plain motion module ("training-free" combination).

Layer classes come from ``ops`` (``torch.nn`` by default; ComfyUI passes ``comfy.ops`` classes so it
can manage devices and dtypes) and the attention kernel from ``attention``.

A second model family builds on the same modules: ``attention_block`` swaps the temporal attention for
a subclass (Animate3D's spatio-temporal attention, which also needs the token grid), and
``norm_over_frames`` GroupNorms each clip over all its frames at once, as diffusers' ``MotionAdapter``
(and so every model trained on it) does, instead of each frame on its own as AnimateDiff does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..checkpoints.motion import site_name, split_site
from ..errors import VividZooError
from ..layout import VideoLayout
from .attention import AttentionFunction, sdpa_attention

ALIGNMENT_LAYERS = ("align_3d_to_2d", "align_2d_to_3d")
PROJECTION_OF = {"align_3d_to_2d": "proj_in", "align_2d_to_3d": "proj_out"}
MOTION_HEADS = 8


def alignment_as_projection_deltas(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Alignment weights re-keyed as changes to ``proj_in`` / ``proj_out``.

    Each alignment layer runs beside a projection on the same input, so at inference
    ``proj(x) + align(x) == (proj + align)(x)``: added into the projection, it costs nothing.
    """
    deltas = {}
    for key, value in weights.items():
        layer = key.rsplit(".", 2)[-2]
        deltas[key.replace(f".{layer}.", f".{PROJECTION_OF[layer]}.")] = value
    return deltas


def sinusoidal_position_encoding(length: int, channels: int) -> torch.Tensor:
    """AnimateDiff's ``pe`` buffer, shape ``(1, length, channels)``."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32) * (-math.log(10000.0) / channels))
    pe = torch.zeros(1, length, channels)
    pe[0, :, 0::2] = torch.sin(position * frequency)
    pe[0, :, 1::2] = torch.cos(position * frequency)
    return pe


class PositionalEncoding(nn.Module):
    def __init__(self, channels: int, length: int) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoidal_position_encoding(length, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


@dataclass(frozen=True)
class TokenGrid:
    """Where the ``(copies * views * height * width, frames, C)`` sequences a temporal attention sees come from."""

    layout: VideoLayout
    height: int
    width: int

    @property
    def pixels(self) -> int:
        return self.height * self.width


class TemporalSelfAttention(nn.Module):
    """Self-attention along time; input ``(sequences, frames, C)``."""

    def __init__(self, channels: int, heads: int, pe_length: int, ops: Any, attention: AttentionFunction) -> None:
        super().__init__()
        self.heads = heads
        self.attention = attention
        self.to_q = ops.Linear(channels, channels, bias=False)
        self.to_k = ops.Linear(channels, channels, bias=False)
        self.to_v = ops.Linear(channels, channels, bias=False)
        self.to_out = nn.ModuleList([ops.Linear(channels, channels)])
        self.pos_encoder = PositionalEncoding(channels, pe_length)

    def forward(self, x: torch.Tensor, grid: TokenGrid | None = None) -> torch.Tensor:
        x = self.pos_encoder(x)
        return self.to_out[0](self.attention(self.to_q(x), self.to_k(x), self.to_v(x), self.heads))


class GEGLU(nn.Module):
    def __init__(self, channels: int, hidden: int, ops: Any) -> None:
        super().__init__()
        self.proj = ops.Linear(channels, hidden * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, channels: int, ops: Any) -> None:
        super().__init__()
        self.net = nn.ModuleList(
            [GEGLU(channels, channels * 4, ops), nn.Dropout(0.0), ops.Linear(channels * 4, channels)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class TemporalTransformerBlock(nn.Module):
    def __init__(self, channels: int, heads: int, pe_length: int, ops: Any, attention: AttentionFunction,
                 attention_block: type[TemporalSelfAttention] = TemporalSelfAttention) -> None:
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            [attention_block(channels, heads, pe_length, ops, attention) for _ in range(2)]
        )
        self.norms = nn.ModuleList([ops.LayerNorm(channels) for _ in range(2)])
        self.ff = FeedForward(channels, ops)
        self.ff_norm = ops.LayerNorm(channels)

    def forward(self, x: torch.Tensor, grid: TokenGrid | None = None) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = attention(norm(x), grid) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    def __init__(
        self, channels: int, pe_length: int, blocks: int, heads: int, ops: Any, attention: AttentionFunction,
        attention_block: type[TemporalSelfAttention] = TemporalSelfAttention, norm_over_frames: bool = False,
    ) -> None:
        super().__init__()
        self.norm = ops.GroupNorm(32, channels, eps=1e-6, affine=True)
        self.norm_over_frames = norm_over_frames
        self.proj_in = ops.Linear(channels, channels)
        self.align_3d_to_2d = ops.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            [TemporalTransformerBlock(channels, heads, pe_length, ops, attention, attention_block)
             for _ in range(blocks)]
        )
        self.proj_out = ops.Linear(channels, channels)
        self.align_2d_to_3d = ops.Linear(channels, channels)
        for layer in (self.align_3d_to_2d, self.align_2d_to_3d):
            with torch.no_grad():
                layer.weight.zero_()
                layer.bias.zero_()
        # False when the alignment is known to be zero (training-free): skips two matmuls, same result.
        self.use_alignment = True

    def normalise(self, x: torch.Tensor, layout: VideoLayout) -> torch.Tensor:
        """GroupNorm per image, or per clip over all its frames (``norm_over_frames``)."""
        if not self.norm_over_frames:
            return self.norm(x)
        clips = rearrange(x, "(k f v) c h w -> (k v) c f h w", f=layout.frames, v=layout.views)
        return rearrange(self.norm(clips), "(k v) c f h w -> (k f v) c h w", v=layout.views)

    def forward(self, x: torch.Tensor, layout: VideoLayout) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = self.normalise(x, layout).permute(0, 2, 3, 1).reshape(batch, height * width, channels)
        hidden = self.proj_in(tokens)
        if self.use_alignment:
            hidden = hidden + self.align_3d_to_2d(tokens)
        hidden = layout.group_frames(hidden)
        grid = TokenGrid(layout, height, width)
        for block in self.transformer_blocks:
            hidden = block(hidden, grid)
        hidden = layout.ungroup_frames(hidden, height * width)
        out = self.proj_out(hidden)
        if self.use_alignment:
            out = out + self.align_2d_to_3d(hidden)
        # x first: the sum takes the first operand's memory layout. The other way round, the permuted
        # (channels-last) view would decide it and the rest of the UNet would run channels-last: slower.
        return x + out.reshape(batch, height, width, channels).permute(0, 3, 1, 2)


class MotionModule(nn.Module):
    """One temporal module of the UNet (AnimateDiff's ``VanillaTemporalModule``)."""

    def __init__(self, channels: int, pe_length: int, blocks: int, heads: int, ops: Any, attention: AttentionFunction,
                 attention_block: type[TemporalSelfAttention] = TemporalSelfAttention, norm_over_frames: bool = False):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, pe_length, blocks, heads, ops, attention,
                                                        attention_block, norm_over_frames)
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor, layout: VideoLayout) -> torch.Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(self.temporal_transformer, x, layout, use_reentrant=False)
        return self.temporal_transformer(x, layout)


class MotionBlock(nn.Module):
    def __init__(self, modules: list[MotionModule]) -> None:
        super().__init__()
        self.motion_modules = nn.ModuleList(modules)


class MotionModuleSet(nn.Module):
    """All motion modules of a UNet, named like the checkpoint (``down_blocks.0.motion_modules.0``).

    ``channels`` maps each site name to its width, in UNet order (see ``MotionModuleCheckpoint``).
    """

    def __init__(
        self,
        channels: dict[str, int],
        pe_length: int,
        version: str,
        transformer_blocks: int = 1,
        heads: int = MOTION_HEADS,
        ops: Any = nn,
        attention: AttentionFunction = sdpa_attention,
        attention_block: type[TemporalSelfAttention] = TemporalSelfAttention,
        norm_over_frames: bool = False,
    ) -> None:
        super().__init__()
        self.version = version
        self.pe_length = pe_length
        self.channel_layout = dict(channels)
        groups: dict[str, dict[int, MotionModule]] = {}
        for site, width in channels.items():
            kind, level, index = split_site(site)
            part = kind if level is None else f"{kind}.{level}"
            groups.setdefault(part, {})[index] = MotionModule(
                width, pe_length, transformer_blocks, heads, ops, attention, attention_block, norm_over_frames
            )

        def block(part: str) -> MotionBlock:
            modules = groups[part]
            return MotionBlock([modules[i] for i in sorted(modules)])

        def blocks(kind: str) -> nn.ModuleList:
            parts = sorted((p for p in groups if p.startswith(kind + ".")), key=lambda p: int(p.split(".")[1]))
            return nn.ModuleList([block(p) for p in parts])

        self.down_blocks = blocks("down_blocks")
        self.mid_block = block("mid_block") if "mid_block" in groups else None
        self.up_blocks = blocks("up_blocks")

    @classmethod
    def from_checkpoint(
        cls, checkpoint: Any, ops: Any = nn, attention: AttentionFunction = sdpa_attention
    ) -> MotionModuleSet:
        """Builds the modules of a :class:`MotionModuleCheckpoint` and loads its weights (alignment: zero)."""
        modules = cls(checkpoint.channels, checkpoint.pe_length, checkpoint.version,
                      checkpoint.transformer_blocks, ops=ops, attention=attention)
        expected = modules.state_dict()
        for key, tensor in checkpoint.weights.items():
            if key in expected and tensor.shape != expected[key].shape:
                raise VividZooError(
                    f"{checkpoint.path.name}: motion-module tensor {key} has shape {tuple(tensor.shape)}, "
                    f"the AnimateDiff layout needs {tuple(expected[key].shape)}"
                )
        missing, unexpected = modules.load_state_dict(checkpoint.weights, strict=False)
        not_loaded = [k for k in missing if k.rsplit(".", 2)[-2] not in ALIGNMENT_LAYERS]
        if not_loaded or unexpected:
            raise VividZooError(
                f"{checkpoint.path.name}: motion-module weights do not fit the AnimateDiff layout "
                f"(missing {not_loaded[:3]}, unexpected {unexpected[:3]})"
            )
        return modules

    @property
    def max_frames(self) -> int:
        return self.pe_length

    def sites(self) -> Iterator[tuple[str, MotionModule]]:
        """``(site name, module)`` in UNet forward order: down blocks, mid block, up blocks."""
        named_blocks = [(f"down_blocks.{i}", b) for i, b in enumerate(self.down_blocks)]
        if self.mid_block is not None:
            named_blocks.append(("mid_block", self.mid_block))
        named_blocks += [(f"up_blocks.{i}", b) for i, b in enumerate(self.up_blocks)]
        for part, block in named_blocks:
            for j, module in enumerate(block.motion_modules):
                yield site_name(part, j), module

    def check_frames(self, frames: int) -> None:
        if frames > self.pe_length:
            raise VividZooError(
                f"{frames} frames is more than the {self.version} motion module sees at once (at most "
                f"{self.pe_length}). For longer videos use sliding context windows of at most {self.pe_length} "
                f"frames (CLI: --context-frames 16; ComfyUI: context_frames on the Vivid-ZOO sampler), or make "
                f"at most {self.pe_length} frames"
            )

    def alignment_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if k.rsplit(".", 2)[-2] in ALIGNMENT_LAYERS}

    def alignment_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name.rsplit(".", 2)[-2] in ALIGNMENT_LAYERS]

    def load_alignment(self, weights: dict[str, torch.Tensor] | None) -> None:
        """Loads alignment weights (already validated), or zeroes them for the training-free mode."""
        own = self.alignment_state_dict()
        with torch.no_grad():
            for key, target in own.items():
                if weights is None:
                    target.zero_()
                else:
                    target.copy_(weights[key])
        self.set_alignment_enabled(weights is not None)

    def fold_alignment(self, weights: dict[str, torch.Tensor]) -> None:
        """For inference: adds alignment weights into proj_in / proj_out; the alignment layers then stay off."""
        state = self.state_dict()
        with torch.no_grad():
            for key, delta in alignment_as_projection_deltas(weights).items():
                state[key].add_(delta.to(state[key].dtype))
        self.load_alignment(None)

    def set_alignment_enabled(self, enabled: bool) -> None:
        """Whether the alignment layers are computed; training needs them even while they are zero."""
        for _, module in self.sites():
            module.temporal_transformer.use_alignment = enabled

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        for _, module in self.sites():
            module.gradient_checkpointing = enabled

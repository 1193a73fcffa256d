"""LGM's and L4GM's network in plain PyTorch: 4 views x 9 channels -> 3D Gaussians ``[..., N, 14]``.

The same module names as the originals (``core/unet.py``, ``core/models.py`` of 3DTopia/LGM and
nv-tlabs/L4GM-official), so their files load strictly (:mod:`vividzoo_core.checkpoints.reconstruction`).

Input: ``[B, T, 4, 9, H, W]``: frames ``T``, 4 views in the model's order (:mod:`vividzoo_core.lgm_cameras`),
per pixel RGB normalised with ImageNet's mean/std and the Plücker ray ``(o x d, d)``
(:mod:`vividzoo_core.network.lgm_inputs` builds it). Inside, images run frame-major with the views innermost
(``f * 4 + v``), as L4GM's ``forward_gaussians`` reshapes them. Without temporal attention (LGM) frames are
independent. With it (L4GM, interpolation model) every multi-view attention (tokens: the 4 views of one frame) is
followed by a temporal attention (tokens: one view over all ``T`` frames).

Output ``[B, T, N, 14]``, ``N = 4 * S * S`` Gaussians ordered view, row, column (``S`` = H / 2): the columns are
``pos 3, opacity 1, scale 3, rotation 4, rgb 3`` after the original activations: ``clamp(-1, 1)``, ``sigmoid``,
``0.1 * softplus``, unit quaternion (``F.normalize``, the ``fixrot`` models), ``0.5 * tanh + 0.5``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints.reconstruction import GAUSSIAN_CHANNELS, IN_CHANNELS, LGMShape, ReconstructionCheckpoint
from .attention import AttentionFunction, sdpa_attention

VIEWS = 4
HEADS = 16
SKIP_SCALE = math.sqrt(0.5)
GROUPS, EPS = 32, 1e-5
COLUMNS = {"pos": slice(0, 3), "opacity": slice(3, 4), "scale": slice(4, 7), "rotation": slice(7, 11),
           "rgb": slice(11, 14)}
"""The contract with the Gaussian container: columns of the ``[..., N, 14]`` tensor, activated."""


def activate(raw: torch.Tensor) -> torch.Tensor:
    """The original activations of ``[..., 14]`` raw values, concatenated in the same column order."""
    return torch.cat([
        raw[..., COLUMNS["pos"]].clamp(-1, 1),
        torch.sigmoid(raw[..., COLUMNS["opacity"]]),
        0.1 * F.softplus(raw[..., COLUMNS["scale"]]),
        F.normalize(raw[..., COLUMNS["rotation"]], dim=-1),
        0.5 * torch.tanh(raw[..., COLUMNS["rgb"]]) + 0.5,
    ], dim=-1)


class SelfAttention(nn.Module):
    """``core/attention.py`` ``Attention``: fused qkv without bias (q, k, v in that order, heads packed), 16 heads,
    output projection. ``attention`` is the kernel (:func:`sdpa_attention`, or a host's with the same contract)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(channels, 3 * channels, bias=False)
        self.proj = nn.Linear(channels, channels)
        self.attention: AttentionFunction = sdpa_attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.proj(self.attention(q, k, v, HEADS))


class GroupAttention(nn.Module):
    """Normalise, attend within groups of images, residual times ``sqrt(1/2)``.

    ``temporal=False``: ``core/unet.py`` ``MVAttention``: the 4 consecutive images of one frame attend together.
    ``temporal=True``: L4GM's ``TempAttention``: the images of one view over all ``frames`` attend together.
    """

    def __init__(self, channels: int, temporal: bool) -> None:
        super().__init__()
        self.temporal = temporal
        self.norm = nn.GroupNorm(GROUPS, channels, eps=EPS)
        self.attn = SelfAttention(channels)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        images, channels, height, width = x.shape
        y = self.norm(x).reshape(-1, frames, VIEWS, channels, height, width)  # [B, T, V, C, H, W]
        if self.temporal:
            y = y.transpose(1, 2)  # [B, V, T, ...]: one group per view
        batch, outer, inner = y.shape[:3]
        y = y.permute(0, 1, 2, 4, 5, 3).reshape(batch * outer, inner * height * width, channels)
        y = self.attn(y).reshape(batch, outer, inner, height, width, channels).permute(0, 1, 2, 5, 3, 4)
        if self.temporal:
            y = y.transpose(1, 2)
        return (y.reshape(images, channels, height, width) + x) * SKIP_SCALE


class ResnetBlock(nn.Module):
    def __init__(self, inp: int, out: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(GROUPS, inp, eps=EPS)
        self.conv1 = nn.Conv2d(inp, out, 3, padding=1)
        self.norm2 = nn.GroupNorm(GROUPS, out, eps=EPS)
        self.conv2 = nn.Conv2d(out, out, 3, padding=1)
        self.shortcut = nn.Conv2d(inp, out, 1) if inp != out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return (h + self.shortcut(x)) * SKIP_SCALE


def _attentions(count: int, channels: int, attention: bool, temporal: bool) -> tuple[nn.ModuleList, ...]:
    """``attns`` and, for L4GM, ``t_attns`` (``None`` entries keep the original's indices)."""
    spatial = nn.ModuleList([GroupAttention(channels, False) if attention else None for _ in range(count)])
    if not temporal:
        return (spatial,)
    return spatial, nn.ModuleList([GroupAttention(channels, True) if attention else None for _ in range(count)])


class Block(nn.Module):
    """A down, mid or up block: resnets, each followed by its attentions (mid: attentions before the resnet)."""

    def __init__(self, kind: str, nets: list[ResnetBlock], channels: int, attention: bool, temporal: bool,
                 resample: bool) -> None:
        super().__init__()
        self.kind = kind
        self.nets = nn.ModuleList(nets)
        count = len(nets) - (kind == "mid")
        parts = _attentions(count, channels, attention, temporal)
        self.attns = parts[0]
        self.t_attns = parts[1] if temporal else None
        if resample:
            conv = nn.Conv2d(channels, channels, 3, stride=2 if kind == "down" else 1, padding=1)
            setattr(self, "downsample" if kind == "down" else "upsample", conv)

    def _attend(self, x: torch.Tensor, index: int, frames: int) -> torch.Tensor:
        if self.attns[index] is not None:
            x = self.attns[index](x, frames)
        if self.t_attns is not None and self.t_attns[index] is not None:
            x = self.t_attns[index](x, frames)
        return x


class LGMNetwork(nn.Module):
    """``LGM.unet`` + ``LGM.conv`` + the activations, for LGM (``shape.temporal`` False) and L4GM."""

    def __init__(self, shape: LGMShape) -> None:
        super().__init__()
        self.shape = shape
        self.unet = nn.Module()
        down, up, temporal = shape.down_channels, shape.up_channels, shape.temporal
        self.unet.conv_in = nn.Conv2d(IN_CHANNELS, down[0], 3, padding=1)
        blocks, out = [], down[0]
        for i, channels in enumerate(down):
            inp, out = out, channels
            nets = [ResnetBlock(inp if j == 0 else out, out) for j in range(shape.layers_per_block)]
            blocks.append(Block("down", nets, out, shape.down_attention[i], temporal, i != len(down) - 1))
        self.unet.down_blocks = nn.ModuleList(blocks)
        self.unet.mid_block = Block("mid", [ResnetBlock(down[-1], down[-1]) for _ in range(2)], down[-1],
                                    shape.mid_attention, temporal, False)
        blocks, out, layers = [], up[0], shape.layers_per_block + 1
        for i, channels in enumerate(up):
            inp, out = out, channels
            skip = down[max(-2 - i, -len(down))]
            nets = [ResnetBlock((inp if j == 0 else out) + (skip if j == layers - 1 else out), out)
                    for j in range(layers)]
            blocks.append(Block("up", nets, out, shape.up_attention[i], temporal, i != len(up) - 1))
        self.unet.up_blocks = nn.ModuleList(blocks)
        self.unet.norm_out = nn.GroupNorm(GROUPS, up[-1], eps=EPS)
        self.unet.conv_out = nn.Conv2d(up[-1], GAUSSIAN_CHANNELS, 3, padding=1)
        self.conv = nn.Conv2d(GAUSSIAN_CHANNELS, GAUSSIAN_CHANNELS, 1)

    def set_attention(self, attention: AttentionFunction) -> None:
        """Use another attention kernel (ComfyUI's ``optimized_attention`` contract) in every attention."""
        for module in self.modules():
            if isinstance(module, SelfAttention):
                module.attention = attention

    @property
    def pixels_per_splat(self) -> int:
        """Input pixels per Gaussian along each side (2 for ``big``: 256 px in, 128 x 128 Gaussians per view)."""
        return 2 ** (self.shape.downsamples - self.shape.upsamples)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``[B, T, 4, 9, H, W]`` -> activated Gaussians ``[B, T, 4 * (H/2) * (W/2), 14]``."""
        batch, frames, views, channels, height, width = inputs.shape
        if views != VIEWS or channels != IN_CHANNELS:
            raise ValueError(f"LGM takes [B, T, {VIEWS}, {IN_CHANNELS}, H, W], got {tuple(inputs.shape)}")
        inputs = inputs.to(self.conv.weight).reshape(batch * frames * views, channels, height, width)
        raw = self.conv(self._unet(inputs, frames if self.shape.temporal else 1))
        size = raw.shape[-2:]
        raw = raw.reshape(batch, frames, views, GAUSSIAN_CHANNELS, *size).permute(0, 1, 2, 4, 5, 3)
        return activate(raw.reshape(batch, frames, views * size[0] * size[1], GAUSSIAN_CHANNELS))

    def _unet(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """``frames``: how many consecutive groups of 4 images form one sequence (1 without temporal attention)."""
        unet = self.unet
        x = unet.conv_in(x)
        skips = [x]
        for block in unet.down_blocks:
            for index, net in enumerate(block.nets):
                x = block._attend(net(x), index, frames)
                skips.append(x)
            if hasattr(block, "downsample"):
                x = block.downsample(x)
                skips.append(x)
        mid = unet.mid_block
        x = mid.nets[0](x)
        for index, net in enumerate(mid.nets[1:]):
            x = net(mid._attend(x, index, frames))
        for block in unet.up_blocks:
            for index, net in enumerate(block.nets):
                x = block._attend(net(torch.cat([x, skips.pop()], dim=1)), index, frames)
            if hasattr(block, "upsample"):
                x = block.upsample(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return unet.conv_out(F.silu(unet.norm_out(x)))


def build_network(checkpoint: ReconstructionCheckpoint, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> LGMNetwork:
    """The network of a checked file, loaded strictly (every key used, none missing), in eval mode."""
    with torch.device("meta"):
        network = LGMNetwork(checkpoint.shape)
    network.load_state_dict(checkpoint.tensors, strict=True, assign=True)
    return network.to(device=device, dtype=dtype).eval()

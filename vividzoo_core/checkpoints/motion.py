"""AnimateDiff motion modules (v1, v2, v3) in their original key names.

Per module the prefix is ``{down_blocks.i|up_blocks.i|mid_block}.motion_modules.j.temporal_transformer.``.
The version is read from the weights: a mid-block module means v2; otherwise the position-encoding
length tells v1 (24) from v3 (32), whose key names are identical.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError
from .animate3d import is_animate3d
from .files import LoadedFile, read_checkpoint

SITE = r"(?:down_blocks\.\d+|up_blocks\.\d+|mid_block)\.motion_modules\.\d+"
"""A motion-module site name as a regular expression (for key patterns of files that name sites)."""
SITE_PATTERN = re.compile(rf"^({SITE})\.(.+)$")
MOTION_DOWNLOAD_HINT = (
    "Vivid-ZOO needs an AnimateDiff motion module for Stable Diffusion 1.5: mm_sd_v15_v2.ckpt (v2, "
    "the paper's), or mm_sd_v14 / mm_sd_v15 (v1), v3_sd15_mm (v3), in ComfyUI/models/animatediff_models"
)
# Frames each version sees at once: the length of its position encoding (``pos_encoder.pe``).
POSITION_ENCODING_LENGTHS = {"v1": 24, "v2": 32, "v3": 32}
VERSION_NAMES = {
    "v1": "AnimateDiff v1 (mm_sd_v14 / mm_sd_v15)",
    "v2": "AnimateDiff v2 (mm_sd_v15_v2)",
    "v3": "AnimateDiff v3 (v3_sd15_mm)",
}


@dataclass
class MotionModuleCheckpoint:
    path: Path
    version: str
    weights: dict[str, torch.Tensor]
    channels: dict[str, int]
    """Input channels of each motion module, by site name (``down_blocks.0.motion_modules.0``), in UNet order."""
    pe_length: int
    transformer_blocks: int
    set_aside: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def max_frames(self) -> int:
        """Frames the module can see at once (its position-encoding length)."""
        return self.pe_length

    @property
    def parameter_count(self) -> int:
        return sum(t.numel() for k, t in self.weights.items() if not k.endswith("pos_encoder.pe"))

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.weights.values())).dtype


def load_motion_module(path: str | Path) -> MotionModuleCheckpoint:
    return parse_motion_module(read_checkpoint(path))


def parse_motion_module(loaded: LoadedFile) -> MotionModuleCheckpoint:
    path = loaded.path
    weights: dict[str, torch.Tensor] = {}
    set_aside = {key: f"non-tensor entry ({type(value).__name__}); not needed" for key, value in loaded.extras.items()}
    for key, tensor in loaded.tensors.items():
        name = key[len("module."):] if key.startswith("module.") else key
        if SITE_PATTERN.match(name):
            weights[name] = tensor
        else:
            set_aside[key] = (
                "UNet weight saved beside the motion modules by AnimateDiff's training script; "
                "the UNet comes from the MVDream checkpoint"
            )
    _refuse_other_kinds(loaded, weights, path)

    channels: dict[str, int] = {}
    for key, tensor in weights.items():
        if key.endswith(".temporal_transformer.norm.weight"):
            channels[key[: -len(".temporal_transformer.norm.weight")]] = tensor.shape[0]
    channels = dict(sorted(channels.items(), key=lambda item: _site_order(item[0])))
    pe_lengths = {t.shape[1] for k, t in weights.items() if k.endswith("pos_encoder.pe")}
    if len(pe_lengths) != 1:
        raise CheckpointError(path, f"motion modules disagree on their position-encoding length: {sorted(pe_lengths)}")
    pe_length = pe_lengths.pop()
    blocks = {int(m.group(1)) for k in weights if (m := re.search(r"\.transformer_blocks\.(\d+)\.", k))}
    down = {s for s in channels if s.startswith("down_blocks.")}
    up = {s for s in channels if s.startswith("up_blocks.")}
    if len(down) != 8 or len(up) != 12:
        raise CheckpointError(
            path,
            f"expected 8 down-block and 12 up-block motion modules (SD 1.5 layout), found {len(down)} and "
            f"{len(up)}. {MOTION_DOWNLOAD_HINT}",
        )
    if site_name("mid_block", 0) in channels:
        version = "v2"
    elif pe_length == POSITION_ENCODING_LENGTHS["v1"]:
        version = "v1"
    elif pe_length == POSITION_ENCODING_LENGTHS["v3"]:
        version = "v3"
    else:
        raise CheckpointError(
            path,
            f"unknown motion-module variant: no mid block and a position encoding of {pe_length} frames "
            f"(v1 has 24, v3 has 32). {MOTION_DOWNLOAD_HINT}",
        )
    return MotionModuleCheckpoint(path, version, weights, channels, pe_length, len(blocks), set_aside)


def _refuse_other_kinds(loaded: LoadedFile, weights: dict[str, torch.Tensor], path: Path) -> None:
    keys = list(loaded.tensors)
    if any("pos_encoder.positional_encoding" in k or ".temporal_attentions." in k for k in keys):
        raise CheckpointError(
            path,
            "this is a HotshotXL temporal-layer file, made for SDXL, not an SD 1.5 motion module. "
            + MOTION_DOWNLOAD_HINT,
        )
    if is_animate3d(loaded):
        raise CheckpointError(
            path, "this is Animate3D's trained model (animate3d_motion_modules.ckpt), not an AnimateDiff motion "
            "module; load it as the Animate3D model")
    if any(".motion_modules." in k and k.endswith("transformer_blocks.0.attn1.to_q.weight") for k in keys):
        raise CheckpointError(
            path, "this is an AnimateDiff motion adapter in diffusers' layout (diffusion_pytorch_model.safetensors); "
            f"use the original release file instead. {MOTION_DOWNLOAD_HINT}")
    if loaded.metadata.get("format") == "vividzoo-alignment":
        raise CheckpointError(path, "this is a Vivid-ZOO alignment file, not a motion module; load it as the alignment")
    if not weights:
        if any(k.startswith(("model.diffusion_model.", "input_blocks.")) for k in keys):
            reason = "this is a Stable Diffusion / MVDream checkpoint, not a motion module"
        else:
            reason = "no motion-module weights found (*.motion_modules.*)"
        raise CheckpointError(path, f"{reason}. {MOTION_DOWNLOAD_HINT}")
    if any("lora" in k.lower() for k in weights):
        raise CheckpointError(
            path, f"this is a motion LoRA, which adjusts a motion module; it cannot replace one. {MOTION_DOWNLOAD_HINT}"
        )
    down_blocks = {int(k.split(".")[1]) for k in weights if k.startswith("down_blocks.")}
    if down_blocks and max(down_blocks) == 2:
        raise CheckpointError(
            path, f"this is an AnimateDiff-SDXL motion module (3 down blocks), made for SDXL. {MOTION_DOWNLOAD_HINT}"
        )
    if not any(k.endswith("pos_encoder.pe") for k in weights):
        raise CheckpointError(
            path,
            "these motion modules have no position encoding (pos_encoder.pe), as in AnimateLCM or "
            f"camera-control variants; they are not supported. {MOTION_DOWNLOAD_HINT}",
        )


def has_motion_modules(keys: Iterable[str]) -> bool:
    """Whether tensor names name motion-module sites (a motion-module file, or one made for motion modules)."""
    return any(".motion_modules." in key for key in keys)


def site_name(part: str, index: int) -> str:
    """The name of motion module ``index`` of a UNet part (``down_blocks.1``, ``mid_block``, ``up_blocks.3``)."""
    return f"{part}.motion_modules.{index}"


def split_site(site: str) -> tuple[str, int | None, int]:
    """``down_blocks.1.motion_modules.0`` -> ``("down_blocks", 1, 0)``; the mid block's level is None."""
    part, _, index = site.partition(".motion_modules.")
    kind, _, level = part.partition(".")
    return kind, int(level) if level else None, int(index)


def unet_sites(block_channels: tuple[int, ...] | list[int], mid_block: bool = True) -> dict[str, int]:
    """AnimateDiff's places in an SD 1.5-style UNet with these level widths, in forward order, with their widths:
    2 per down level (after each res block or attention), the mid block (v2 only), 3 per up level."""
    sites = {site_name(f"down_blocks.{i}", j): c for i, c in enumerate(block_channels) for j in range(2)}
    if mid_block:
        sites[site_name("mid_block", 0)] = block_channels[-1]
    sites.update({site_name(f"up_blocks.{i}", j): c for i, c in enumerate(reversed(block_channels)) for j in range(3)})
    return sites


def _site_order(site: str) -> tuple[int, int, int]:
    """UNet forward order: down blocks, mid block, up blocks."""
    kind, level, index = split_site(site)
    return {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}[kind], level or 0, index

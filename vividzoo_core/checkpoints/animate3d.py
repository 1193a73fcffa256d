"""Animate3D's trained model, ``animate3d_motion_modules.ckpt`` (huggingface.co/yanqinJiang/animate3d).

Its keys are those of Animate3D's diffusers ``MVUNetMotionModel``. ``inference.py`` accepts two forms:

- modules only (the released file): what Animate3D trains, keys with ``motion_modules.`` (every motion
  module: diffusers' temporal transformer, and per attention the processor's spatial branch, alpha blender
  and ``time_pos_embed.pe``) or ``i2v.`` (``attn1.processor.to_{q,out}_i2v``: the reference attention).
  It leaves 726 tensors to the base files: the MVDream UNet (690 with the camera MLP), the IP-Adapter's image
  projection (4) and its 16 x 2 cross-attention projections. No motion-module tensor is left to the base
  motion module, so AnimateDiff's weights are not needed to run it.
- the whole UNet (``{"state_dict": ...}`` as its training script saves), which adds those 726 tensors.

Motion-module tensors are renamed to this package's motion-module names (AnimateDiff's, as
``network/motion_module.py`` has them): ``attn1``/``attn2`` -> ``attention_blocks.0/1``, ``norm1/2/3`` ->
``norms.0/1``/``ff_norm``, processor tensors drop ``processor.``, ``time_pos_embed.pe`` -> ``pos_encoder.pe``,
``alpha_blender.mix_factor`` -> ``mix_factor``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError
from .files import LoadedFile, read_checkpoint
from .ip_adapter import is_ip_adapter

ANIMATE3D_DOWNLOAD_HINT = (
    "Animate3D's trained model is animate3d_motion_modules.ckpt (huggingface.co/yanqinJiang/animate3d), "
    "in ComfyUI/models/animatediff_models or models/vividzoo"
)
MARKERS = (".processor.to_q_sp.", ".processor.to_q_i2v.", ".processor.alpha_blender.")
SITE = re.compile(r"^((?:down_blocks|up_blocks)\.\d+|mid_block)\.motion_modules\.(\d+)\.(.+)$")
BLOCK_RENAMES = (
    (
        re.compile(r"^transformer_blocks\.(\d+)\.attn([12])\.processor\.time_pos_embed\.pe$"),
        lambda m: f"transformer_blocks.{m[1]}.attention_blocks.{int(m[2]) - 1}.pos_encoder.pe",
    ),
    (
        re.compile(r"^transformer_blocks\.(\d+)\.attn([12])\.processor\.alpha_blender\.mix_factor$"),
        lambda m: f"transformer_blocks.{m[1]}.attention_blocks.{int(m[2]) - 1}.mix_factor",
    ),
    (
        re.compile(
            r"^transformer_blocks\.(\d+)\.attn([12])\.processor\.(to_[qkv]_sp\.weight|to_out_sp\.(?:weight|bias))$"
        ),
        lambda m: f"transformer_blocks.{m[1]}.attention_blocks.{int(m[2]) - 1}.{m[3]}",
    ),
    (
        re.compile(r"^transformer_blocks\.(\d+)\.attn([12])\.(to_[qkv]\.weight|to_out\.0\.(?:weight|bias))$"),
        lambda m: f"transformer_blocks.{m[1]}.attention_blocks.{int(m[2]) - 1}.{m[3]}",
    ),
    (
        re.compile(r"^transformer_blocks\.(\d+)\.norm([12])\.(weight|bias)$"),
        lambda m: f"transformer_blocks.{m[1]}.norms.{int(m[2]) - 1}.{m[3]}",
    ),
    (
        re.compile(r"^transformer_blocks\.(\d+)\.norm3\.(weight|bias)$"),
        lambda m: f"transformer_blocks.{m[1]}.ff_norm.{m[2]}",
    ),
    (re.compile(r"^(transformer_blocks\.\d+\.ff\.net\.(?:0\.proj|2)\.(?:weight|bias))$"), lambda m: m[1]),
    (re.compile(r"^((?:norm|proj_in|proj_out)\.(?:weight|bias))$"), lambda m: m[1]),
)
UNET_PARTS = ("conv_in.", "time_embedding.", "camera_embedding.", "down_blocks.", "mid_block.", "up_blocks.",
              "conv_norm_out.", "conv_out.")
IMAGE_PROJECTION = "encoder_hid_proj.image_projection_layers.0."
MODULES_ONLY, WHOLE_UNET = "modules", "unet"


@dataclass
class Animate3DCheckpoint:
    path: Path
    form: str
    """``modules`` (motion modules and reference attention only) or ``unet`` (the whole UNet)."""
    motion: dict[str, torch.Tensor]
    """Motion-module tensors in this package's names (``...temporal_transformer.transformer_blocks.0...``)."""
    channels: dict[str, int]
    pe_length: int
    processors: dict[str, torch.Tensor]
    """Attention-processor tensors of the spatial UNet in Animate3D's names (``...attn1.processor.to_q_i2v.weight``;
    in the whole-UNet form also ``...attn2.processor.to_k_ip.0.weight``): this package's processors are named alike."""
    unet: dict[str, torch.Tensor] | None = None
    """Whole-UNet form: the spatial UNet in diffusers' names (``camera_embedding`` as ``class_embedding``)."""
    image_projection: dict[str, torch.Tensor] | None = None
    """Whole-UNet form: the IP-Adapter image projection (``image_embeds.*``, ``norm.*``)."""
    set_aside: dict[str, str] = field(default_factory=dict)

    @property
    def parameter_count(self) -> int:
        parts = (self.motion, self.processors, self.unet or {}, self.image_projection or {})
        return sum(t.numel() for part in parts for k, t in part.items() if not k.endswith(".pe"))


def is_animate3d(loaded: LoadedFile) -> bool:
    return any(marker in key for key in loaded.tensors for marker in MARKERS)


def load_animate3d(path: str | Path) -> Animate3DCheckpoint:
    return parse_animate3d(read_checkpoint(path))


def parse_animate3d(loaded: LoadedFile) -> Animate3DCheckpoint:
    path = loaded.path
    if not is_animate3d(loaded):
        raise CheckpointError(path, _not_animate3d_reason(loaded))
    set_aside = {key: "training state or other non-tensor entry; not needed" for key in loaded.extras}
    motion, processors, unet, projection, unknown = {}, {}, {}, {}, []
    for key, tensor in loaded.tensors.items():
        name = key.removeprefix("module.")  # DistributedDataParallel saves
        if (site := SITE.match(name)) is not None:
            renamed = _motion_name(site[3])
            if renamed is None:
                unknown.append(key)
            else:
                motion[f"{site[1]}.motion_modules.{site[2]}.temporal_transformer.{renamed}"] = tensor
        elif ".attn1.processor." in name or ".attn2.processor." in name:
            processors[name] = tensor
        elif name.startswith(IMAGE_PROJECTION):
            projection[name[len(IMAGE_PROJECTION):]] = tensor
        elif name.startswith(UNET_PARTS):
            unet[name.replace("camera_embedding.", "class_embedding.", 1)] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(path, f"tensors that are not part of Animate3D's UNet: {', '.join(unknown[:3])}")
    channels = {key[: -len(".temporal_transformer.norm.weight")]: t.shape[0]
                for key, t in motion.items() if key.endswith(".temporal_transformer.norm.weight")}
    pe_lengths = {t.shape[1] for k, t in motion.items() if k.endswith("pos_encoder.pe")}
    if len(pe_lengths) != 1:
        raise CheckpointError(
            path, f"the motion modules' temporal position encodings disagree or are missing ({sorted(pe_lengths)})"
        )
    form = WHOLE_UNET if unet else MODULES_ONLY
    if form == MODULES_ONLY and projection:
        raise CheckpointError(path, "holds an IP-Adapter image projection but no UNet: neither form Animate3D saves")
    return Animate3DCheckpoint(path, form, motion, channels, pe_lengths.pop(), processors, unet or None,
                               projection or None, set_aside)


def _motion_name(rest: str) -> str | None:
    for pattern, rename in BLOCK_RENAMES:
        if (match := pattern.match(rest)) is not None:
            return rename(match)
    return None


def _not_animate3d_reason(loaded: LoadedFile) -> str:
    keys = list(loaded.tensors)
    if loaded.metadata.get("format") == "vividzoo-alignment" or any(".align_3d_to_2d." in k for k in keys):
        return ("this is a Vivid-ZOO alignment file, not Animate3D's model; use it as the alignment of the Vivid-ZOO "
                f"text-to-video model. {ANIMATE3D_DOWNLOAD_HINT}")
    if any(".temporal_transformer." in k for k in keys):
        return f"this is an AnimateDiff motion module, not Animate3D's trained model. {ANIMATE3D_DOWNLOAD_HINT}"
    if any(".motion_modules." in k for k in keys):
        return ("this is an AnimateDiff motion adapter in diffusers' layout, without Animate3D's spatial and reference "
                f"attention. {ANIMATE3D_DOWNLOAD_HINT}")
    if any(k.startswith(("model.diffusion_model.", "input_blocks.")) for k in keys):
        return (
            f"this is a Stable Diffusion / MVDream checkpoint, not Animate3D's trained model. {ANIMATE3D_DOWNLOAD_HINT}"
        )
    if is_ip_adapter(loaded):
        return f"this is an IP-Adapter, not Animate3D's trained model. {ANIMATE3D_DOWNLOAD_HINT}"
    return f"no Animate3D weights found (motion modules with spatial attention). {ANIMATE3D_DOWNLOAD_HINT}"

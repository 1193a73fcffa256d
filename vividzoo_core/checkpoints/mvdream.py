"""MVDream checkpoints: ``sd-v1.5-4view.pt`` / ``sd-v2.1-base-4view.pt`` and conversions of them.

A release file is a raw state dict: ``model.diffusion_model.*`` (LDM UNet names plus
``camera_embed.{0,2}``), ``first_stage_model.*`` (VAE), ``cond_stage_model.transformer.*`` (v1.5,
HF CLIP ViT-L/14) or ``cond_stage_model.model.*`` (v2.1, OpenCLIP ViT-H/14), and 12 unprefixed
noise-schedule buffers. UNet-only files (with or without the prefix) are read too.

Splitting sorts every tensor into the UNet, the VAE, the text encoder, or ``set_aside`` with the
reason it is not used, so nothing is dropped unnoticed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError
from .animate3d import is_animate3d
from .clip_vision import is_clip_vision
from .files import LoadedFile, read_checkpoint
from .ip_adapter import is_ip_adapter
from .motion import has_motion_modules

SD15 = "sd15"
SD21 = "sd21"
FAMILY_NAMES = {
    SD15: "MVDream v1.5 (Stable Diffusion 1.5 UNet, CLIP ViT-L/14 text encoder)",
    SD21: "MVDream v2.1 (Stable Diffusion 2.1-base UNet, OpenCLIP ViT-H/14 text encoder)",
}
UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
OPEN_CLIP_PREFIX = "cond_stage_model.model."
SCHEDULE_BUFFERS = frozenset({
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
    "posterior_mean_coef1", "posterior_mean_coef2",
})
CAMERA_INPUTS = 16
"""MVDream's camera embedding takes a 4x4 camera-to-world matrix, flattened row-major."""
CAMERA_KEYS = ("camera_embed.0.weight", "camera_embed.0.bias", "camera_embed.2.weight", "camera_embed.2.bias")
# MVDream's camera MLP is the LDM UNet's ADM class embedding ``label_emb.0`` (16 inputs) under another name: the
# hosts (ComfyUI, diffusers' converter) load it under that name, and a checkpoint saved back from ComfyUI keeps it.
CAMERA_AS_ADM = {"camera_embed.0.": "label_emb.0.0.", "camera_embed.2.": "label_emb.0.2."}
MVDREAM_DOWNLOAD_HINT = (
    "Vivid-ZOO needs an MVDream multi-view checkpoint: sd-v1.5-4view.pt "
    "(huggingface.co/MVDream/MVDream) in ComfyUI/models/vividzoo or models/checkpoints"
)


@dataclass(frozen=True)
class UNetShape:
    """The UNet's architecture, read from its weights."""

    family: str
    in_channels: int
    out_channels: int
    model_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attention_levels: tuple[bool, ...]
    transformer_depth: int
    context_dim: int
    camera_dim: int
    linear_projection: bool

    @property
    def block_channels(self) -> tuple[int, ...]:
        return tuple(self.model_channels * m for m in self.channel_mult)

    @property
    def time_embed_dim(self) -> int:
        return self.model_channels * 4

    def heads(self, channels: int) -> int:
        """Attention heads at a width: 8 for SD 1.5, 64-channel heads for SD 2.1 (not in the weights)."""
        return 8 if self.family == SD15 else max(1, channels // 64)


@dataclass(frozen=True)
class VaeShape:
    channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    latent_channels: int
    scaling_factor: float = 0.18215

    @property
    def block_channels(self) -> tuple[int, ...]:
        return tuple(self.channels * m for m in self.channel_mult)

    @property
    def downscale(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)


@dataclass(frozen=True)
class TextEncoderShape:
    """CLIP text transformer. ``kind`` is ``clip`` (HF names, last layer) or ``open_clip`` (penultimate)."""

    kind: str
    width: int
    layers: int
    intermediate: int
    vocab_size: int
    max_positions: int

    @property
    def heads(self) -> int:
        return max(1, self.width // 64)

    @property
    def layers_used(self) -> int:
        return self.layers - 1 if self.kind == "open_clip" else self.layers


@dataclass
class MVDreamCheckpoint:
    path: Path
    family: str
    unet: dict[str, torch.Tensor]
    unet_shape: UNetShape
    vae: dict[str, torch.Tensor] | None = None
    vae_shape: VaeShape | None = None
    text_encoder: dict[str, torch.Tensor] | None = None
    text_shape: TextEncoderShape | None = None
    set_aside: dict[str, str] = field(default_factory=dict)

    @property
    def parameter_count(self) -> int:
        return sum(t.numel() for part in (self.unet, self.vae, self.text_encoder) if part for t in part.values())

    @property
    def dtype(self) -> torch.dtype:
        return self.unet["input_blocks.0.0.weight"].dtype

    def require_full(self) -> None:
        """Text-to-video needs the VAE and the text encoder, which UNet-only files lack."""
        missing = [name for name, part in (("VAE", self.vae), ("text encoder", self.text_encoder)) if part is None]
        if missing:
            raise CheckpointError(
                self.path,
                f"UNet-only MVDream file: it has no {' and no '.join(missing)}. Use the full release "
                f"(sd-v1.5-4view.pt) for text-to-video, or in ComfyUI load the VAE and CLIP separately",
            )


def load_mvdream(path: str | Path) -> MVDreamCheckpoint:
    return split_mvdream(read_checkpoint(path))


def split_mvdream(loaded: LoadedFile) -> MVDreamCheckpoint:
    """Sorts every tensor of a loaded MVDream file into its part; refuses files that are not MVDream."""
    path, tensors = loaded.path, loaded.tensors
    unet_prefix = UNET_PREFIX if any(k.startswith(UNET_PREFIX) for k in tensors) else ""
    if f"{unet_prefix}input_blocks.0.0.weight" not in tensors:
        raise CheckpointError(path, _not_mvdream_reason(loaded))
    unet: dict[str, torch.Tensor] = {}
    vae: dict[str, torch.Tensor] = {}
    clip: dict[str, torch.Tensor] = {}
    open_clip: dict[str, torch.Tensor] = {}
    set_aside: dict[str, str] = {}
    for key, tensor in tensors.items():
        if unet_prefix and key.startswith(unet_prefix) or not unet_prefix and _is_ldm_unet_key(key):
            unet[_camera_name(key[len(unet_prefix):])] = tensor
        elif key.startswith(VAE_PREFIX):
            vae[key[len(VAE_PREFIX):]] = tensor
        elif key.startswith(CLIP_PREFIX):
            clip[key[len(CLIP_PREFIX):]] = tensor
        elif key.startswith(OPEN_CLIP_PREFIX):
            open_clip[key[len(OPEN_CLIP_PREFIX):]] = tensor
        elif key in SCHEDULE_BUFFERS:
            set_aside[key] = "noise-schedule buffer; the sampler rebuilds the schedule from its settings"
        elif key.startswith("model_ema."):
            set_aside[key] = "EMA copy of the UNet; the regular weights are used"
        else:
            set_aside[key] = "not part of an MVDream model (unrecognised name)"
    for key, reason in loaded.extras.items():
        set_aside[key] = f"non-tensor entry ({type(reason).__name__}); not needed"

    if not all(k in unet for k in CAMERA_KEYS):
        raise CheckpointError(path, _plain_sd_reason(unet))
    unet_shape = _unet_shape(unet, path, unet_prefix)
    checkpoint = MVDreamCheckpoint(path, unet_shape.family, unet, unet_shape, set_aside=set_aside)
    if vae:
        checkpoint.vae, checkpoint.vae_shape = vae, _vae_shape(vae, path)
    if clip and open_clip:
        raise CheckpointError(path, "holds two text encoders (CLIP and OpenCLIP); an MVDream file has one")
    if clip or open_clip:
        kind = "clip" if clip else "open_clip"
        expected = "clip" if unet_shape.family == SD15 else "open_clip"
        if kind != expected:
            raise CheckpointError(
                path,
                f"the UNet is {FAMILY_NAMES[unet_shape.family]} but the text encoder is "
                f"{'CLIP ViT-L (SD 1.5)' if kind == 'clip' else 'OpenCLIP (SD 2.x)'}; the parts do not belong together",
            )
        checkpoint.text_encoder, checkpoint.text_shape = _split_text_encoder(clip or open_clip, kind, set_aside, path)
    return checkpoint


def _is_ldm_unet_key(key: str) -> bool:
    return key.split(".", 1)[0] in {
        "time_embed", "camera_embed", "label_emb", "input_blocks", "middle_block", "output_blocks", "out",
    }


def camera_as_adm(key: str) -> str:
    """A UNet key with the camera MLP under its ADM name (``label_emb.0.*``), as the hosts load it."""
    return _renamed(key, CAMERA_AS_ADM)


def _camera_name(key: str) -> str:
    return _renamed(key, {adm: camera for camera, adm in CAMERA_AS_ADM.items()})


def _renamed(key: str, names: dict[str, str]) -> str:
    for old, new in names.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


def _plain_sd_reason(unet: dict[str, torch.Tensor]) -> str:
    if "label_emb.0.0.weight" in unet:
        return (
            f"this UNet has a class/ADM embedding of {unet['label_emb.0.0.weight'].shape[1]} inputs (SDXL or "
            f"an unCLIP-style model), not MVDream's {CAMERA_INPUTS}-number camera embedding. {MVDREAM_DOWNLOAD_HINT}"
        )
    return (
        "it has no camera embedding (model.diffusion_model.camera_embed.*): this is a plain Stable "
        f"Diffusion checkpoint, not a multi-view (MVDream) model. {MVDREAM_DOWNLOAD_HINT}"
    )


def _not_mvdream_reason(loaded: LoadedFile) -> str:
    keys = loaded.tensors.keys()
    if loaded.metadata.get("format") == "vividzoo-alignment":
        return "this is a Vivid-ZOO alignment file; load it as the alignment, not as the MVDream model"
    if is_animate3d(loaded):
        return "this is Animate3D's trained model (animate3d_motion_modules.ckpt); load it as the Animate3D model"
    if is_ip_adapter(loaded):
        return "this is an IP-Adapter; load it as the IP-Adapter, not as the MVDream model"
    if is_clip_vision(loaded):
        return "this is a CLIP image encoder; load it as the CLIP vision model, not as the MVDream model"
    if has_motion_modules(keys):
        return "this is an AnimateDiff motion module; load it as the motion module, not as the MVDream model"
    if any(k.startswith("conditioner.embedders") for k in keys):
        return f"this is an SDXL checkpoint, not a multi-view model. {MVDREAM_DOWNLOAD_HINT}"
    if any(k.startswith(("down_blocks.", "unet.down_blocks.")) for k in keys):
        return (
            "this looks like a diffusers-format model; Vivid-ZOO reads the original MVDream release "
            f"layout (model.diffusion_model.*). {MVDREAM_DOWNLOAD_HINT}"
        )
    return f"no UNet weights found (model.diffusion_model.input_blocks.*). {MVDREAM_DOWNLOAD_HINT}"


def _count(keys: list[str] | set[str], pattern: str) -> int:
    found = {m.group(1) for k in keys if (m := re.match(pattern, k))}
    return len(found)


def _unet_shape(unet: dict[str, torch.Tensor], path: Path, prefix: str = "") -> UNetShape:
    try:
        first = unet["input_blocks.0.0.weight"]
        _check_input_conv(first, unet, path, prefix)
        model_channels, in_channels = first.shape[0], first.shape[1]
        levels: list[list[int]] = [[]]
        index = 1
        while f"input_blocks.{index}.0.op.weight" in unet or f"input_blocks.{index}.0.in_layers.0.weight" in unet:
            if f"input_blocks.{index}.0.op.weight" in unet:
                levels.append([])
            else:
                levels[-1].append(index)
            index += 1
        if len({len(blocks) for blocks in levels}) != 1 or not levels[0]:
            raise KeyError("uneven number of res blocks per level")
        channel_mult = tuple(
            unet[f"input_blocks.{blocks[0]}.0.out_layers.3.weight"].shape[0] // model_channels for blocks in levels
        )
        attention = tuple(f"input_blocks.{blocks[0]}.1.proj_in.weight" in unet for blocks in levels)
        first_attention = next(blocks[0] for blocks, has in zip(levels, attention) if has)
        prefix = f"input_blocks.{first_attention}.1."
        depth = _count(list(unet), re.escape(prefix) + r"transformer_blocks\.(\d+)\.")
        proj_in = unet[prefix + "proj_in.weight"]
        context_dim = unet[prefix + "transformer_blocks.0.attn2.to_k.weight"].shape[1]
        shape = UNetShape(
            family=SD15 if proj_in.ndim == 4 else SD21,
            in_channels=in_channels,
            out_channels=unet["out.2.weight"].shape[0],
            model_channels=model_channels,
            channel_mult=channel_mult,
            num_res_blocks=len(levels[0]),
            attention_levels=attention,
            transformer_depth=depth,
            context_dim=context_dim,
            camera_dim=unet["camera_embed.0.weight"].shape[1],
            linear_projection=proj_in.ndim == 2,
        )
    except (KeyError, StopIteration, IndexError) as error:
        raise CheckpointError(path, f"the UNet weights are incomplete or of an unknown layout ({error})") from None
    if shape.camera_dim != CAMERA_INPUTS:
        raise CheckpointError(path, f"camera embedding takes {shape.camera_dim} numbers; MVDream's takes "
                                    f"{CAMERA_INPUTS} (a 4x4 matrix)")
    return shape


def _check_input_conv(first: torch.Tensor, unet: dict[str, torch.Tensor], path: Path, prefix: str) -> None:
    """The input convolution gives the UNet's base width, which every level's width is a multiple of:
    exactly the channels the first res block (``input_blocks.1``) takes."""
    following = unet.get("input_blocks.1.0.in_layers.0.weight")  # the first res block's GroupNorm
    if following is None or following.ndim != 1:
        return  # an unknown layout: reading the shape names what is missing
    width = following.shape[0]
    if first.ndim != 4 or first.shape[0] != width:
        inputs = first.shape[1] if first.ndim == 4 else "C"
        raise CheckpointError(
            path,
            f"tensor {prefix}input_blocks.0.0.weight has shape {tuple(first.shape)}; "
            f"expected ({width}, {inputs}, 3, 3): "
            f"the input convolution must give the {width} channels that {prefix}input_blocks.1.0.in_layers.0.weight "
            f"(the first res block) takes",
        )


def _vae_shape(vae: dict[str, torch.Tensor], path: Path) -> VaeShape:
    try:
        channels = vae["encoder.conv_in.weight"].shape[0]
        levels = _count(list(vae), r"encoder\.down\.(\d+)\.block\.0\.conv1\.weight")
        mult = tuple(vae[f"encoder.down.{i}.block.0.conv2.weight"].shape[0] // channels for i in range(levels))
        return VaeShape(
            channels=channels,
            channel_mult=mult,
            num_res_blocks=_count(list(vae), r"encoder\.down\.0\.block\.(\d+)\."),
            latent_channels=vae["decoder.conv_in.weight"].shape[1],
        )
    except KeyError as error:
        raise CheckpointError(path, f"the VAE weights (first_stage_model.*) are incomplete: missing {error}") from None


# Per text-encoder kind: token embedding, layer-number pattern, first MLP input, position embedding.
TEXT_ENCODER_KEYS = {
    "clip": ("text_model.embeddings.token_embedding.weight", r"text_model\.encoder\.layers\.(\d+)\.",
             "text_model.encoder.layers.0.mlp.fc1.weight", "text_model.embeddings.position_embedding.weight"),
    "open_clip": ("token_embedding.weight", r"transformer\.resblocks\.(\d+)\.",
                  "transformer.resblocks.0.mlp.c_fc.weight", "positional_embedding"),
}


def _split_text_encoder(
    weights: dict[str, torch.Tensor], kind: str, set_aside: dict[str, str], path: Path
) -> tuple[dict[str, torch.Tensor], TextEncoderShape]:
    prefix = CLIP_PREFIX if kind == "clip" else OPEN_CLIP_PREFIX
    token_key, layer_pattern, mlp_key, position_key = TEXT_ENCODER_KEYS[kind]
    try:
        embedding = weights[token_key]
        shape = TextEncoderShape(
            kind=kind,
            width=embedding.shape[1],
            layers=_count(list(weights), layer_pattern),
            intermediate=weights[mlp_key].shape[0],
            vocab_size=embedding.shape[0],
            max_positions=weights[position_key].shape[0],
        )
    except KeyError as error:
        raise CheckpointError(path, f"the text encoder weights ({prefix}*) are incomplete: missing {error}") from None
    if kind == "clip":
        unused = {"text_model.embeddings.position_ids": "position index buffer; the text encoder rebuilds it"}
    else:
        last = f"transformer.resblocks.{shape.layers - 1}."
        unused = {k: "last OpenCLIP layer; MVDream v2.1 conditions on the penultimate layer"
                  for k in weights if k.startswith(last)}
        unused.update({"text_projection": "CLIP's image-text projection; not used for conditioning",
                       "logit_scale": "CLIP's image-text similarity scale; not used for conditioning",
                       "attn_mask": "causal mask buffer; rebuilt by the text encoder"})
    used = {}
    for key, tensor in weights.items():
        if key in unused:
            set_aside[prefix + key] = unused[key]
        else:
            used[key] = tensor
    return used, shape

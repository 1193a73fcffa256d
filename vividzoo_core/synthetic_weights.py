"""Random-weight checkpoints in the real file layouts, for tests, demos and benchmarks.

The key layouts are enumerated here from the published architectures (LDM UNet/VAE names, HF CLIP,
OpenCLIP, AnimateDiff), independently of the classes that load them, so loading these files
strictly checks the loaders. ``tiny`` keeps every structural feature (4 UNet levels, 2 res blocks,
attention on 3 levels, 21 motion modules) at small widths; ``full`` has the real shapes.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .checkpoints.alignment import alignment_checkpoint, save_alignment
from .checkpoints.clip_vision import ClipVisionShape
from .checkpoints.files import COMFYUI_FOLDERS, save_weights
from .checkpoints.motion import POSITION_ENCODING_LENGTHS, unet_sites
from .checkpoints.mvdream import (
    CLIP_PREFIX,
    OPEN_CLIP_PREFIX,
    SD15,
    SD21,
    UNET_PREFIX,
    VAE_PREFIX,
    TextEncoderShape,
    UNetShape,
    VaeShape,
)
from .network.motion_module import sinusoidal_position_encoding
from .schedules import make_betas
from .synthetic_reconstruction_weights import write_lgm_test_weights

Init = tuple  # ("normal", std) | ("ones",) | ("zeros",) | ("pe",) | ("position_ids",)
Spec = dict[str, tuple[tuple[int, ...], Init]]


@dataclass(frozen=True)
class ModelSizes:
    unet: UNetShape
    vae: VaeShape
    text: TextEncoderShape


def _unet(family: str, channels: int, mult: tuple[int, ...], context: int) -> UNetShape:
    return UNetShape(family, 4, 4, channels, mult, 2, (True, True, True, False), 1, context, 16, family == SD21)


TINY_SD15 = ModelSizes(
    _unet(SD15, 32, (1, 2, 2, 2), 64), VaeShape(32, (1, 2, 2, 2), 1, 4), TextEncoderShape("clip", 64, 2, 128, 49408, 77)
)
TINY_SD21 = ModelSizes(
    _unet(SD21, 64, (1, 2, 2, 2), 64),
    VaeShape(32, (1, 2, 2, 2), 1, 4),
    TextEncoderShape("open_clip", 64, 3, 256, 49408, 77),
)
FULL_SD15 = ModelSizes(
    _unet(SD15, 320, (1, 2, 4, 4), 768),
    VaeShape(128, (1, 2, 4, 4), 2, 4),
    TextEncoderShape("clip", 768, 12, 3072, 49408, 77),
)


# -- key layouts ---------------------------------------------------------------------------------

def _linear(spec: Spec, name: str, out: int, inp: int, bias: bool = True) -> None:
    spec[f"{name}.weight"] = ((out, inp), ("normal", 1 / math.sqrt(inp)))
    if bias:
        spec[f"{name}.bias"] = ((out,), ("zeros",))


def _conv(spec: Spec, name: str, out: int, inp: int, kernel: int = 3) -> None:
    spec[f"{name}.weight"] = ((out, inp, kernel, kernel), ("normal", 1 / math.sqrt(inp * kernel * kernel)))
    spec[f"{name}.bias"] = ((out,), ("zeros",))


def _norm(spec: Spec, name: str, channels: int) -> None:
    spec[f"{name}.weight"] = ((channels,), ("ones",))
    spec[f"{name}.bias"] = ((channels,), ("zeros",))


def _ldm_resblock(spec: Spec, name: str, inp: int, out: int, emb: int) -> None:
    _norm(spec, f"{name}.in_layers.0", inp)
    _conv(spec, f"{name}.in_layers.2", out, inp)
    _linear(spec, f"{name}.emb_layers.1", out, emb)
    _norm(spec, f"{name}.out_layers.0", out)
    _conv(spec, f"{name}.out_layers.3", out, out)
    if inp != out:
        _conv(spec, f"{name}.skip_connection", out, inp, kernel=1)


def _ldm_transformer(spec: Spec, name: str, channels: int, shape: UNetShape) -> None:
    _norm(spec, f"{name}.norm", channels)
    for projection in ("proj_in", "proj_out"):
        if shape.linear_projection:
            _linear(spec, f"{name}.{projection}", channels, channels)
        else:
            _conv(spec, f"{name}.{projection}", channels, channels, kernel=1)
    for d in range(shape.transformer_depth):
        block = f"{name}.transformer_blocks.{d}"
        for attn, context in (("attn1", channels), ("attn2", shape.context_dim)):
            _linear(spec, f"{block}.{attn}.to_q", channels, channels, bias=False)
            _linear(spec, f"{block}.{attn}.to_k", channels, context, bias=False)
            _linear(spec, f"{block}.{attn}.to_v", channels, context, bias=False)
            _linear(spec, f"{block}.{attn}.to_out.0", channels, channels)
        _linear(spec, f"{block}.ff.net.0.proj", channels * 8, channels)
        _linear(spec, f"{block}.ff.net.2", channels, channels * 4)
        for n in (1, 2, 3):
            _norm(spec, f"{block}.norm{n}", channels)


def mvdream_unet_spec(shape: UNetShape) -> Spec:
    """LDM UNet key names and shapes, with MVDream's ``camera_embed``."""
    spec: Spec = {}
    emb, mc = shape.time_embed_dim, shape.model_channels
    _linear(spec, "time_embed.0", emb, mc)
    _linear(spec, "time_embed.2", emb, emb)
    _linear(spec, "camera_embed.0", emb, shape.camera_dim)
    _linear(spec, "camera_embed.2", emb, emb)
    _conv(spec, "input_blocks.0.0", mc, shape.in_channels)
    skips, channels, index = [mc], mc, 1
    levels = len(shape.channel_mult)
    for level, mult in enumerate(shape.channel_mult):
        for _ in range(shape.num_res_blocks):
            _ldm_resblock(spec, f"input_blocks.{index}.0", channels, mc * mult, emb)
            channels = mc * mult
            if shape.attention_levels[level]:
                _ldm_transformer(spec, f"input_blocks.{index}.1", channels, shape)
            skips.append(channels)
            index += 1
        if level != levels - 1:
            _conv(spec, f"input_blocks.{index}.0.op", channels, channels)
            skips.append(channels)
            index += 1
    _ldm_resblock(spec, "middle_block.0", channels, channels, emb)
    _ldm_transformer(spec, "middle_block.1", channels, shape)
    _ldm_resblock(spec, "middle_block.2", channels, channels, emb)
    index = 0
    for level in reversed(range(levels)):
        out_channels = mc * shape.channel_mult[level]
        for r in range(shape.num_res_blocks + 1):
            _ldm_resblock(spec, f"output_blocks.{index}.0", channels + skips.pop(), out_channels, emb)
            channels, position = out_channels, 1
            if shape.attention_levels[level]:
                _ldm_transformer(spec, f"output_blocks.{index}.1", channels, shape)
                position = 2
            if level != 0 and r == shape.num_res_blocks:
                _conv(spec, f"output_blocks.{index}.{position}.conv", channels, channels)
            index += 1
    _norm(spec, "out.0", mc)
    _conv(spec, "out.2", shape.out_channels, mc)
    return spec


def _vae_resblock(spec: Spec, name: str, inp: int, out: int) -> None:
    _norm(spec, f"{name}.norm1", inp)
    _conv(spec, f"{name}.conv1", out, inp)
    _norm(spec, f"{name}.norm2", out)
    _conv(spec, f"{name}.conv2", out, out)
    if inp != out:
        _conv(spec, f"{name}.nin_shortcut", out, inp, kernel=1)


def _vae_mid(spec: Spec, name: str, channels: int) -> None:
    _vae_resblock(spec, f"{name}.block_1", channels, channels)
    _norm(spec, f"{name}.attn_1.norm", channels)
    for part in ("q", "k", "v", "proj_out"):
        _conv(spec, f"{name}.attn_1.{part}", channels, channels, kernel=1)
    _vae_resblock(spec, f"{name}.block_2", channels, channels)


def vae_spec(shape: VaeShape) -> Spec:
    """LDM ``AutoencoderKL`` key names and shapes (no ``first_stage_model.`` prefix)."""
    spec: Spec = {}
    widths, z = shape.block_channels, shape.latent_channels
    _conv(spec, "encoder.conv_in", shape.channels, 3)
    channels = shape.channels
    for i, width in enumerate(widths):
        for j in range(shape.num_res_blocks):
            _vae_resblock(spec, f"encoder.down.{i}.block.{j}", channels, width)
            channels = width
        if i != len(widths) - 1:
            _conv(spec, f"encoder.down.{i}.downsample.conv", channels, channels)
    _vae_mid(spec, "encoder.mid", channels)
    _norm(spec, "encoder.norm_out", channels)
    _conv(spec, "encoder.conv_out", 2 * z, channels)
    _conv(spec, "quant_conv", 2 * z, 2 * z, kernel=1)
    _conv(spec, "post_quant_conv", z, z, kernel=1)
    channels = widths[-1]
    _conv(spec, "decoder.conv_in", channels, z)
    _vae_mid(spec, "decoder.mid", channels)
    for i in reversed(range(len(widths))):
        for j in range(shape.num_res_blocks + 1):
            _vae_resblock(spec, f"decoder.up.{i}.block.{j}", channels, widths[i])
            channels = widths[i]
        if i != 0:
            _conv(spec, f"decoder.up.{i}.upsample.conv", channels, channels)
    _norm(spec, "decoder.norm_out", channels)
    _conv(spec, "decoder.conv_out", 3, channels)
    return spec


def clip_text_spec(shape: TextEncoderShape) -> Spec:
    """Hugging Face ``CLIPTextModel`` names, as in SD 1.x checkpoints (with the old position_ids buffer)."""
    spec: Spec = {
        "text_model.embeddings.token_embedding.weight": ((shape.vocab_size, shape.width), ("normal", 0.02)),
        "text_model.embeddings.position_embedding.weight": ((shape.max_positions, shape.width), ("normal", 0.01)),
        "text_model.embeddings.position_ids": ((1, shape.max_positions), ("position_ids",)),
    }
    for n in range(shape.layers):
        layer = f"text_model.encoder.layers.{n}"
        for projection in ("q_proj", "k_proj", "v_proj", "out_proj"):
            _linear(spec, f"{layer}.self_attn.{projection}", shape.width, shape.width)
        _norm(spec, f"{layer}.layer_norm1", shape.width)
        _linear(spec, f"{layer}.mlp.fc1", shape.intermediate, shape.width)
        _linear(spec, f"{layer}.mlp.fc2", shape.width, shape.intermediate)
        _norm(spec, f"{layer}.layer_norm2", shape.width)
    _norm(spec, "text_model.final_layer_norm", shape.width)
    return spec


def open_clip_text_spec(shape: TextEncoderShape) -> Spec:
    """OpenCLIP text tower names, as in SD 2.x checkpoints under ``cond_stage_model.model.``."""
    spec: Spec = {
        "token_embedding.weight": ((shape.vocab_size, shape.width), ("normal", 0.02)),
        "positional_embedding": ((shape.max_positions, shape.width), ("normal", 0.01)),
        "text_projection": ((shape.width, shape.width), ("normal", 1 / math.sqrt(shape.width))),
        "logit_scale": ((), ("ones",)),
    }
    for n in range(shape.layers):
        block = f"transformer.resblocks.{n}"
        _norm(spec, f"{block}.ln_1", shape.width)
        spec[f"{block}.attn.in_proj_weight"] = ((3 * shape.width, shape.width), ("normal", 1 / math.sqrt(shape.width)))
        spec[f"{block}.attn.in_proj_bias"] = ((3 * shape.width,), ("zeros",))
        _linear(spec, f"{block}.attn.out_proj", shape.width, shape.width)
        _norm(spec, f"{block}.ln_2", shape.width)
        _linear(spec, f"{block}.mlp.c_fc", shape.intermediate, shape.width)
        _linear(spec, f"{block}.mlp.c_proj", shape.width, shape.intermediate)
    _norm(spec, "ln_final", shape.width)
    return spec


def motion_module_spec(version: str, block_channels: tuple[int, ...]) -> Spec:
    """AnimateDiff motion-module names: 2 per down level, 3 per up level, plus a mid module in v2."""
    spec: Spec = {}
    pe_length = POSITION_ENCODING_LENGTHS[version]
    for site, c in unet_sites(block_channels, mid_block=version == "v2").items():
        base = f"{site}.temporal_transformer"
        _norm(spec, f"{base}.norm", c)
        _linear(spec, f"{base}.proj_in", c, c)
        _linear(spec, f"{base}.proj_out", c, c)
        block = f"{base}.transformer_blocks.0"
        for a in range(2):
            attention = f"{block}.attention_blocks.{a}"
            for projection in ("to_q", "to_k", "to_v"):
                _linear(spec, f"{attention}.{projection}", c, c, bias=False)
            _linear(spec, f"{attention}.to_out.0", c, c)
            spec[f"{attention}.pos_encoder.pe"] = ((1, pe_length, c), ("pe",))
            _norm(spec, f"{block}.norms.{a}", c)
        _linear(spec, f"{block}.ff.net.0.proj", c * 8, c)
        _linear(spec, f"{block}.ff.net.2", c, c * 4)
        _norm(spec, f"{block}.ff_norm", c)
    return spec


def parameter_count(spec: Spec, skip: Callable[[str], bool] = lambda key: False) -> int:
    return sum(math.prod(shape) for key, (shape, _) in spec.items() if not skip(key))


# -- tensors and files ---------------------------------------------------------------------------

def materialise(spec: Spec, generator: torch.Generator, dtype: torch.dtype = torch.float32,
                all_random: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of ``spec``. ``all_random``: norm scales and biases random too (``1 + N(0, 0.1)``,
    ``N(0, 0.1)``), so that equality tests against a reference see every parameter."""
    tensors = {}
    for key, (shape, init) in spec.items():
        kind = init[0]
        if kind == "normal":
            tensor = torch.randn(shape, generator=generator) * init[1]
        elif kind == "ones":
            tensor = 1 + 0.1 * torch.randn(shape, generator=generator) if all_random else torch.ones(shape)
        elif kind == "zeros":
            tensor = 0.1 * torch.randn(shape, generator=generator) if all_random else torch.zeros(shape)
        elif kind == "pe":
            tensor = sinusoidal_position_encoding(shape[1], shape[2])
        else:
            tensors[key] = torch.arange(shape[1], dtype=torch.int64)[None]
            continue
        tensors[key] = tensor.to(dtype)
    return tensors


def mvdream_state_dict(sizes: ModelSizes, seed: int = 0, dtype: torch.dtype = torch.float32,
                       unet_only: bool = False, all_random: bool = False) -> dict[str, torch.Tensor]:
    """A raw MVDream release state dict: prefixed parts plus the 12 schedule buffers."""
    generator = torch.Generator().manual_seed(seed)

    def part(prefix: str, spec: Spec) -> dict[str, torch.Tensor]:
        return {prefix + k: v for k, v in materialise(spec, generator, dtype, all_random).items()}

    state = part(UNET_PREFIX, mvdream_unet_spec(sizes.unet))
    if unet_only:
        return state
    state.update(part(VAE_PREFIX, vae_spec(sizes.vae)))
    if sizes.text.kind == "clip":
        text = part(CLIP_PREFIX, clip_text_spec(sizes.text))
    else:
        text = part(OPEN_CLIP_PREFIX, open_clip_text_spec(sizes.text))
    state.update(text)
    state.update(_schedule_buffers())
    return state


def _schedule_buffers() -> dict[str, torch.Tensor]:
    betas = make_betas("scaled_linear")
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    previous = torch.cat([torch.ones(1, dtype=betas.dtype), alphas_cumprod[:-1]])
    variance = betas * (1 - previous) / (1 - alphas_cumprod)
    buffers = {
        "betas": betas, "alphas_cumprod": alphas_cumprod, "alphas_cumprod_prev": previous,
        "sqrt_alphas_cumprod": alphas_cumprod.sqrt(), "sqrt_one_minus_alphas_cumprod": (1 - alphas_cumprod).sqrt(),
        "log_one_minus_alphas_cumprod": (1 - alphas_cumprod).log(), "sqrt_recip_alphas_cumprod": alphas_cumprod.rsqrt(),
        "sqrt_recipm1_alphas_cumprod": (1 / alphas_cumprod - 1).sqrt(), "posterior_variance": variance,
        "posterior_log_variance_clipped": variance.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * previous.sqrt() / (1 - alphas_cumprod),
        "posterior_mean_coef2": (1 - previous) * (1 - betas).sqrt() / (1 - alphas_cumprod),
    }
    return {k: v.float() for k, v in buffers.items()}


def motion_state_dict(version: str, block_channels: tuple[int, ...], seed: int = 1,
                      dtype: torch.dtype = torch.float32, all_random: bool = False) -> dict[str, torch.Tensor]:
    return materialise(motion_module_spec(version, block_channels), torch.Generator().manual_seed(seed), dtype,
                       all_random)


def alignment_state_dict(version: str, block_channels: tuple[int, ...], seed: int = 2, scale: float = 0.5,
                         dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Non-zero alignment weights (``scale / sqrt(C)``), so they visibly change the output."""
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for key, (shape, _) in motion_module_spec(version, block_channels).items():
        if key.endswith(".temporal_transformer.norm.weight"):
            site, channels = key[: -len(".norm.weight")], shape[0]
            for layer in ("align_3d_to_2d", "align_2d_to_3d"):
                weights[f"{site}.{layer}.weight"] = (torch.randn(channels, channels, generator=generator)
                                                    * scale / math.sqrt(channels)).to(dtype)
                weights[f"{site}.{layer}.bias"] = (torch.randn(channels, generator=generator) * 0.01).to(dtype)
    return weights


@dataclass(frozen=True)
class RandomWeights:
    """Paths of a set of random-weight files."""

    mvdream: Path
    motion: dict[str, Path]
    alignment: Path
    mvdream_sd21: Path | None = None
    mvdream_unet_only: Path | None = None


def write_test_weights(directory: str | Path, full_size: bool = False, dtype: torch.dtype | None = None,
                       log: Callable[[str], None] = lambda message: None) -> RandomWeights:
    """Writes MVDream (.pt), AnimateDiff v1/v2 (.ckpt) and v3 (.safetensors), and alignment files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sizes = FULL_SD15 if full_size else TINY_SD15
    dtype = dtype or (torch.float16 if full_size else torch.float32)
    tag = "full" if full_size else "tiny"

    def saved(path: Path, state: dict[str, torch.Tensor]) -> Path:
        return save_weights(path, state, log)

    mvdream = saved(directory / f"mvdream_sd15_{tag}_random.pt", mvdream_state_dict(sizes, dtype=dtype))
    channels = sizes.unet.block_channels
    motion = {
        "v1": saved(directory / f"mm_v1_{tag}_random.ckpt", motion_state_dict("v1", channels, dtype=dtype)),
        "v2": saved(directory / f"mm_v2_{tag}_random.ckpt", motion_state_dict("v2", channels, dtype=dtype)),
        "v3": saved(directory / f"mm_v3_{tag}_random.safetensors", motion_state_dict("v3", channels, dtype=dtype)),
    }
    alignment = alignment_checkpoint(alignment_state_dict("v2", channels, dtype=dtype), "v2",
                                     {"note": "random weights for testing, not trained", "seed": 2})
    alignment_path = save_alignment(alignment, directory / f"alignment_v2_{tag}_random.safetensors")
    log(f"wrote {alignment_path}")
    if full_size:
        return RandomWeights(mvdream, motion, alignment_path)
    sd21 = saved(directory / "mvdream_sd21_tiny_random.pt", mvdream_state_dict(TINY_SD21, seed=3))
    unet_only = saved(directory / "mvdream_sd15_tiny_unet_only.safetensors",
                      mvdream_state_dict(TINY_SD15, unet_only=True))
    return RandomWeights(mvdream, motion, alignment_path, sd21, unet_only)


TEST_PREFIX = "TEST-RANDOM-"  # random weights must never pass for real ones in a loader's file list


def install_comfyui_test_weights(models: str | Path, full_size: bool = False,
                                 log: Callable[[str], None] = lambda message: None) -> dict[str, Path]:
    """Random-weight MVDream, motion-module (v1, v2, v3) and alignment files in ComfyUI's model folders,
    Animate3D's modules, the SD 1.5 IP-Adapter and a CLIP image encoder fitting that MVDream file, and tiny LGM,
    L4GM and L4GM-interpolation files (``lgm``, ``l4gm``, ``l4gm_interp``) in ``models/lgm``.

    Every name starts with ``TEST-RANDOM-``; returns the paths by kind (``mvdream``, ``motion_v2``, ``animate3d``,
    ``ipadapter``, ``clipvision``, ...). ComfyUI's own 'Load CLIP Vision' refuses the tiny image encoder (it
    knows only the released sizes); the pack's Animate3D loader reads it. ``full_size``: the real shapes (ViT-H).
    """
    models = Path(models)
    with tempfile.TemporaryDirectory() as scratch:
        files = write_test_weights(scratch, full_size=full_size)
        sources = {"mvdream": files.mvdream, "alignment": files.alignment,
                   **{f"motion_{version}": path for version, path in files.motion.items()}}
        shapes = (FULL_SD15.unet, FULL_CLIP_VISION_H, torch.float16, "full") if full_size else (TINY_SD15.unet,)
        animate3d = write_animate3d_files(Path(scratch) / "animate3d", *shapes)
        sources.update(animate3d=animate3d.modules, ipadapter=animate3d.ip_adapter_safetensors,
                       clipvision=animate3d.clip_vision)

        sources.update(write_lgm_test_weights(Path(scratch) / "lgm"))  # tiny widths even with full_size
        installed = {}
        for kind, source in sources.items():
            folder = models / COMFYUI_FOLDERS[kind.split("_")[0]]
            folder.mkdir(parents=True, exist_ok=True)
            installed[kind] = Path(shutil.move(source, folder / (TEST_PREFIX + source.name)))
            log(f"wrote {installed[kind]}")
    return installed



# -- Animate3D (MV-VDM) and the IP-Adapter / CLIP image encoder files it reads ------------------------
# Animate3D's UNet keeps SD 1.5's key structure (4 levels, a width change at every down level), so a
# tiny UNet of widths 32/64/128/128 has exactly as many tensors as the real one: the original's own
# load check (726 tensors left to the base files in the modules-only form) holds for it too.
TINY_ANIMATE3D = ModelSizes(
    _unet(SD15, 32, (1, 2, 4, 4), 64), VaeShape(32, (1, 2, 2, 2), 1, 4), TextEncoderShape("clip", 64, 2, 128, 49408, 77)
)
TINY_CLIP_VISION = ClipVisionShape(width=64, layers=2, intermediate=128, patch=14, image_size=224, projection=32)
FULL_CLIP_VISION_H = ClipVisionShape(
    width=1280, layers=32, intermediate=5120, patch=14, image_size=224, projection=1024
)
IP_ADAPTER_TOKENS = 4


def clip_vision_spec(shape: ClipVisionShape) -> Spec:
    """transformers ``CLIPVisionModelWithProjection`` names, as in h94/IP-Adapter's image encoder."""
    width, tokens = shape.width, (shape.image_size // shape.patch) ** 2 + 1
    spec: Spec = {
        "vision_model.embeddings.class_embedding": ((width,), ("normal", 0.02)),
        "vision_model.embeddings.patch_embedding.weight": (
            (width, 3, shape.patch, shape.patch), ("normal", 1 / math.sqrt(3 * shape.patch**2))),
        "vision_model.embeddings.position_embedding.weight": ((tokens, width), ("normal", 0.02)),
    }
    _norm(spec, "vision_model.pre_layrnorm", width)
    for n in range(shape.layers):
        layer = f"vision_model.encoder.layers.{n}"
        for projection in ("k_proj", "v_proj", "q_proj", "out_proj"):
            _linear(spec, f"{layer}.self_attn.{projection}", width, width)
        _norm(spec, f"{layer}.layer_norm1", width)
        _linear(spec, f"{layer}.mlp.fc1", shape.intermediate, width)
        _linear(spec, f"{layer}.mlp.fc2", width, shape.intermediate)
        _norm(spec, f"{layer}.layer_norm2", width)
    _norm(spec, "vision_model.post_layernorm", width)
    _linear(spec, "visual_projection", shape.projection, width, bias=False)
    return spec


def synthetic_condition_views(pixels: int) -> np.ndarray:
    """Four deterministic ``(pixels, pixels, 3)`` uint8 test views (integer arithmetic: identical on every machine
    and NumPy version), as Animate3D's condition images in tests and the reference fixtures."""
    y, x = np.mgrid[0:pixels, 0:pixels].astype(np.int64)
    views = []
    for v in range(4):
        channels = [((x * (v + 3) + y * (c + 5) + (x * y) // (7 + v)) * 256 // (pixels + 1)) % 256 for c in range(3)]
        views.append(np.stack(channels, -1).astype(np.uint8))
    return np.stack(views)


def spatial_attention_sites(shape: UNetShape) -> list[tuple[str, int]]:
    """``(path, channels)`` of every spatial transformer block in diffusers' names and in the order of
    diffusers' ``attn_processors`` (down blocks, up blocks, then the mid block), which numbers IP-Adapter layers."""
    widths, levels, depth = shape.block_channels, len(shape.channel_mult), shape.transformer_depth
    sites = []
    for i in range(levels):
        if shape.attention_levels[i]:
            sites += [(f"down_blocks.{i}.attentions.{j}.transformer_blocks.{d}", widths[i])
                      for j in range(shape.num_res_blocks) for d in range(depth)]
    for i in range(levels):
        level = levels - 1 - i
        if shape.attention_levels[level]:
            sites += [(f"up_blocks.{i}.attentions.{j}.transformer_blocks.{d}", widths[level])
                      for j in range(shape.num_res_blocks + 1) for d in range(depth)]
    sites += [(f"mid_block.attentions.0.transformer_blocks.{d}", widths[-1]) for d in range(depth)]
    return sites


def ip_adapter_spec(shape: UNetShape, clip_width: int) -> Spec:
    """IP-Adapter (SD 1.5 layout) flattened as in ``ip-adapter_sd15.safetensors``: ``image_proj.{proj,norm}.*``
    and ``ip_adapter.{2i+1}.to_{k,v}_ip.weight`` for the i-th cross-attention in :func:`spatial_attention_sites`
    order."""
    context = shape.context_dim
    spec: Spec = {}
    _linear(spec, "image_proj.proj", IP_ADAPTER_TOKENS * context, clip_width)
    _norm(spec, "image_proj.norm", context)
    for i, (_, channels) in enumerate(spatial_attention_sites(shape)):
        for projection in ("to_k_ip", "to_v_ip"):
            _linear(spec, f"ip_adapter.{2 * i + 1}.{projection}", channels, context, bias=False)
    return spec


def animate3d_motion_sites(shape: UNetShape) -> list[tuple[str, int]]:
    """Animate3D's motion modules in diffusers' names (``down_blocks.0.motion_modules.0``), forward order."""
    widths = shape.block_channels
    sites = [(f"down_blocks.{i}.motion_modules.{j}", c) for i, c in enumerate(widths) for j in range(2)]
    sites.append(("mid_block.motion_modules.0", widths[-1]))
    return sites + [(f"up_blocks.{i}.motion_modules.{j}", c) for i, c in enumerate(reversed(widths)) for j in range(3)]


def animate3d_spec(shape: UNetShape, pe_length: int = 32) -> Spec:
    """``animate3d_motion_modules.ckpt`` in its modules-only form: the tensors Animate3D trains ("motion_modules."
    and "i2v." in its training config), named as its diffusers ``MVUNetMotionModel`` names them.

    Per motion module: diffusers' temporal transformer (``norm``, ``proj_in/out``, one block of ``norm1-3``,
    ``attn1/2``, ``ff``), and per attention the spatial branch of its processor (``to_{q,k,v,out}_sp``), the
    alpha blender and the temporal position encoding it restores (``time_pos_embed.pe``). Per spatial
    ``attn1``: the reference-attention projections ``to_q_i2v`` and ``to_out_i2v``.
    """
    spec: Spec = {}
    for site, c in animate3d_motion_sites(shape):
        _norm(spec, f"{site}.norm", c)
        _linear(spec, f"{site}.proj_in", c, c)
        block = f"{site}.transformer_blocks.0"
        for n in (1, 2, 3):
            _norm(spec, f"{block}.norm{n}", c)
        for a in (1, 2):
            attention = f"{block}.attn{a}"
            for projection in ("to_q", "to_k", "to_v"):
                _linear(spec, f"{attention}.{projection}", c, c, bias=False)
            _linear(spec, f"{attention}.to_out.0", c, c)
            processor = f"{attention}.processor"
            for projection in ("to_q_sp", "to_k_sp", "to_v_sp"):
                _linear(spec, f"{processor}.{projection}", c, c, bias=False)
            _linear(spec, f"{processor}.to_out_sp", c, c)
            spec[f"{processor}.alpha_blender.mix_factor"] = ((1,), ("normal", 1.0))
            spec[f"{processor}.time_pos_embed.pe"] = ((1, pe_length, c), ("pe",))
        _linear(spec, f"{block}.ff.net.0.proj", c * 8, c)
        _linear(spec, f"{block}.ff.net.2", c, c * 4)
        _linear(spec, f"{site}.proj_out", c, c)
    for path, c in spatial_attention_sites(shape):
        _linear(spec, f"{path}.attn1.processor.to_q_i2v", c, c, bias=False)
        _linear(spec, f"{path}.attn1.processor.to_out_i2v", c, c)
    return spec


def clip_vision_state_dict(shape: ClipVisionShape = TINY_CLIP_VISION, seed: int = 4,
                           dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    return materialise(clip_vision_spec(shape), torch.Generator().manual_seed(seed), dtype, all_random=True)


def ip_adapter_state_dict(shape: UNetShape, clip_width: int, seed: int = 5,
                          dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Flat (safetensors) names; :func:`nested_ip_adapter` gives the ``.bin`` form."""
    return materialise(ip_adapter_spec(shape, clip_width), torch.Generator().manual_seed(seed), dtype, all_random=True)


def nested_ip_adapter(flat: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """``ip-adapter_sd15.bin``'s layout: ``{"image_proj": {...}, "ip_adapter": {...}}``."""
    nested: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
    for key, tensor in flat.items():
        part, name = key.split(".", 1)
        nested[part][name] = tensor
    return nested


def animate3d_state_dict(
    shape: UNetShape, seed: int = 6, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """The modules-only form, every tensor random (the zero-initialised branches too, so none hides)."""
    return materialise(animate3d_spec(shape), torch.Generator().manual_seed(seed), dtype, all_random=True)


def animate3d_full_state_dict(
    mvdream_unet: dict[str, torch.Tensor],
    shape: UNetShape,
    ip_adapter: dict[str, torch.Tensor],
    modules: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """The whole-UNet form: the MVDream UNet (LDM names, no prefix) and the IP-Adapter in the diffusers names
    Animate3D's UNet gives them, plus the trained modules."""
    from diffusers.loaders.single_file_utils import (
        LDM_UNET_KEY,
        convert_ldm_unet_checkpoint,
    )

    from .diffusers_host.unet import unet_config

    renamed = {LDM_UNET_KEY + k.replace("camera_embed.", "label_emb.0.", 1): v for k, v in mvdream_unet.items()}
    unet = convert_ldm_unet_checkpoint(renamed, unet_config(shape))
    state = {k.replace("class_embedding.", "camera_embedding.", 1): v for k, v in unet.items()}
    projection = "encoder_hid_proj.image_projection_layers.0."
    state.update({projection + "image_embeds." + k[len("image_proj.proj."):]: v
                  for k, v in ip_adapter.items() if k.startswith("image_proj.proj.")})
    state.update({projection + "norm." + k[len("image_proj.norm."):]: v
                  for k, v in ip_adapter.items() if k.startswith("image_proj.norm.")})
    for i, (path, _) in enumerate(spatial_attention_sites(shape)):
        for projection_name in ("to_k_ip", "to_v_ip"):
            state[f"{path}.attn2.processor.{projection_name}.0.weight"] = ip_adapter[
                f"ip_adapter.{2 * i + 1}.{projection_name}.weight"]
    state.update(modules)
    return state


@dataclass(frozen=True)
class Animate3DFiles:
    """Animate3D's own files for a given MVDream UNet: the modules-only form, the IP-Adapter, the image encoder."""

    modules: Path
    ip_adapter_bin: Path
    ip_adapter_safetensors: Path
    clip_vision: Path


def write_animate3d_files(directory: str | Path, unet: UNetShape, clip: ClipVisionShape = TINY_CLIP_VISION,
                          dtype: torch.dtype = torch.float32, tag: str = "tiny",
                          log: Callable[[str], None] = lambda message: None) -> Animate3DFiles:
    """``animate3d_motion_modules`` (modules only), ``ip-adapter_sd15`` (.bin and .safetensors) and a CLIP image
    encoder for an MVDream UNet of shape ``unet``; every tensor random."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ip_flat = ip_adapter_state_dict(unet, clip.projection, dtype=dtype)
    return Animate3DFiles(
        modules=save_weights(directory / f"animate3d_motion_modules_{tag}_random.ckpt",
                      animate3d_state_dict(unet, dtype=dtype), log),
        ip_adapter_bin=save_weights(directory / f"ip-adapter_sd15_{tag}_random.bin", nested_ip_adapter(ip_flat), log),
        ip_adapter_safetensors=save_weights(directory / f"ip-adapter_sd15_{tag}_random.safetensors", ip_flat, log),
        clip_vision=save_weights(directory / f"clip_vision_h_{tag}_random.safetensors",
                          clip_vision_state_dict(clip, dtype=dtype), log),
    )


@dataclass(frozen=True)
class Animate3DWeights:
    """Paths of a set of random-weight files for Animate3D, in the layouts users download."""

    mvdream: Path
    motion: Path
    ip_adapter_bin: Path
    ip_adapter_safetensors: Path
    clip_vision: Path
    modules: Path
    full: Path | None = None


def write_animate3d_test_weights(directory: str | Path, full_form: bool = True, full_size: bool = False,
                                 log: Callable[[str], None] = lambda message: None) -> Animate3DWeights:
    """Random MVDream (.pt), AnimateDiff v2 (.ckpt), ip-adapter_sd15 (.bin and .safetensors), CLIP image encoder
    (.safetensors) and ``animate3d_motion_modules.ckpt`` in both forms (the whole-UNet form needs diffusers).

    Tiny (fp32) by default; ``full_size``: the real shapes in fp16 (about 4 GB), for speed and memory.
    Every tensor is random (norms and biases too), so equality tests see every parameter.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sizes, clip, dtype, tag = ((FULL_SD15, FULL_CLIP_VISION_H, torch.float16, "full") if full_size
                               else (TINY_ANIMATE3D, TINY_CLIP_VISION, torch.float32, "tiny"))

    def saved(path: Path, state: dict) -> Path:
        return save_weights(path, state, log)

    mvdream_state = mvdream_state_dict(sizes, seed=0, dtype=dtype, all_random=True)
    own = write_animate3d_files(directory, sizes.unet, clip, dtype, tag, log)
    files = Animate3DWeights(
        mvdream=saved(directory / f"mvdream_sd15_animate3d_{tag}_random.pt", mvdream_state),
        motion=saved(directory / f"mm_sd_v15_v2_animate3d_{tag}_random.ckpt",
                     motion_state_dict("v2", sizes.unet.block_channels, dtype=dtype, all_random=True)),
        ip_adapter_bin=own.ip_adapter_bin, ip_adapter_safetensors=own.ip_adapter_safetensors,
        clip_vision=own.clip_vision, modules=own.modules,
    )
    if not full_form:
        return files
    unet = {k[len(UNET_PREFIX):]: v for k, v in mvdream_state.items() if k.startswith(UNET_PREFIX)}
    ip_flat = ip_adapter_state_dict(sizes.unet, clip.projection, dtype=dtype)
    full = animate3d_full_state_dict(unet, sizes.unet, ip_flat, animate3d_state_dict(sizes.unet, dtype=dtype))
    # As Animate3D's training script saves it: the UNet's state dict under "state_dict", with its step.
    return replace(files, full=saved(directory / f"animate3d_full_unet_{tag}_random.ckpt",
                                     {"state_dict": full, "global_step": 0}))


__all__ = [
    "FULL_CLIP_VISION_H",
    "FULL_SD15",
    "TEST_PREFIX",
    "TINY_ANIMATE3D",
    "TINY_CLIP_VISION",
    "TINY_SD15",
    "TINY_SD21",
    "Animate3DFiles",
    "Animate3DWeights",
    "ModelSizes",
    "RandomWeights",
    "alignment_state_dict",
    "animate3d_full_state_dict",
    "animate3d_motion_sites",
    "animate3d_spec",
    "animate3d_state_dict",
    "clip_text_spec",
    "clip_vision_spec",
    "clip_vision_state_dict",
    "install_comfyui_test_weights",
    "ip_adapter_spec",
    "ip_adapter_state_dict",
    "motion_module_spec",
    "motion_state_dict",
    "mvdream_state_dict",
    "mvdream_unet_spec",
    "nested_ip_adapter",
    "open_clip_text_spec",
    "parameter_count",
    "spatial_attention_sites",
    "synthetic_condition_views",
    "vae_spec",
    "write_animate3d_files",
    "write_animate3d_test_weights",
    "write_test_weights",
]

"""The MVDream checkpoint's VAE as a diffusers ``AutoencoderKL``, and chunked decoding."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..checkpoints.mvdream import VAE_PREFIX, MVDreamCheckpoint
from ..errors import CheckpointError
from .convert import load_converted

ATTENTION_PROJECTIONS = ("q", "k", "v", "proj_out")


def build_vae(checkpoint: MVDreamCheckpoint):
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    checkpoint.require_full()
    shape = checkpoint.vae_shape
    levels = len(shape.channel_mult)
    config = dict(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * levels,
        up_block_types=["UpDecoderBlock2D"] * levels,
        block_out_channels=list(shape.block_channels),
        layers_per_block=shape.num_res_blocks,
        latent_channels=shape.latent_channels,
        norm_num_groups=32,
        scaling_factor=shape.scaling_factor,
    )
    _check_attention_kernels(checkpoint)
    return load_converted(AutoencoderKL, config, checkpoint.vae, convert_ldm_vae_checkpoint, "VAE", checkpoint.path)


def _check_attention_kernels(checkpoint: MVDreamCheckpoint) -> None:
    """The mid-block attention projections are 1x1 convolutions (or linear layers): diffusers' converter
    keeps only ``[:, :, 0, 0]`` of a 4-D weight, so a larger kernel would be cut down without a word."""
    width = checkpoint.vae_shape.block_channels[-1]
    for coder in ("encoder", "decoder"):
        for projection in ATTENTION_PROJECTIONS:
            key = f"{coder}.mid.attn_1.{projection}.weight"
            weight = checkpoint.vae.get(key)
            if weight is None:
                continue  # a missing tensor is named when the weights are loaded
            if weight.shape[:2] != (width, width) or any(size != 1 for size in weight.shape[2:]):
                raise CheckpointError(
                    checkpoint.path,
                    f"tensor {VAE_PREFIX}{key} has shape {tuple(weight.shape)}; expected ({width}, {width}, 1, 1) "
                    f"(a 1x1 convolution; ({width}, {width}) as a linear layer)",
                )


@torch.no_grad()
def decode_latents(
    vae, latents: torch.Tensor, chunk: int = 8, on_chunk: Callable[[], None] = lambda: None
) -> torch.Tensor:
    """Latents ``(n, 4, h, w)`` -> images ``(n, 3, 8h, 8w)`` in [0, 1], float32 on the CPU.

    Decodes ``chunk`` images at a time so memory stays bounded whatever the video length.
    """
    images = []
    scale = vae.config.scaling_factor
    for start in range(0, latents.shape[0], chunk):
        piece = latents[start : start + chunk].to(vae.device, vae.dtype) / scale
        images.append(((vae.decode(piece).sample.float() + 1) / 2).clamp(0, 1).cpu())
        on_chunk()
    return torch.cat(images)


@torch.no_grad()
def encode_images(vae, images: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Images ``(n, 3, H, W)`` in [0, 1] -> scaled latent means ``(n, 4, H/8, W/8)``."""
    latents = []
    for start in range(0, images.shape[0], chunk):
        piece = images[start : start + chunk].to(vae.device, vae.dtype) * 2 - 1
        latents.append(vae.encode(piece).latent_dist.mean * vae.config.scaling_factor)
    return torch.cat(latents)

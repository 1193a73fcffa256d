"""The standalone host: the MVDream UNet, VAE and text encoder as diffusers / transformers models."""

from .text import build_text_encoder, clip_tokenizer, encode_text
from .unet import VividZooUNet, build_unet
from .vae import build_vae, decode_latents, encode_images

__all__ = [
    "VividZooUNet", "build_text_encoder", "build_unet", "build_vae", "clip_tokenizer", "decode_latents",
    "encode_images", "encode_text", "quiet_diffusers",
]


def quiet_diffusers() -> None:
    """diffusers' notices about dtype casts are not the user's concern."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()

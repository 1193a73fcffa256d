"""The standalone host: the MVDream UNet, VAE and text encoder as diffusers / transformers models."""

from .text import build_text_encoder, clip_tokenizer
from .unet import VividZooUNet, build_unet
from .vae import build_vae, decode_latents, encode_images

__all__ = [
    "VividZooUNet", "build_text_encoder", "build_unet", "build_vae", "clip_tokenizer", "decode_latents",
    "encode_images",
]

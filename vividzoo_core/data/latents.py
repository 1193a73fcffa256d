"""The latent cache: every frame of every view encoded once, so training needs no VAE or text encoder.

Per object, ``<object>/latents.safetensors`` holds (fp16):

- ``mean``, ``logvar``: the VAE posterior of every frame, ``(views, frames, 4, size/8, size/8)``, of the
  frames as the trainer prepares them (white behind transparency, resized, centre-cropped to ``size``).
  The trainer draws ``mean + exp(logvar / 2) * noise`` with the same noise as the image path.
- ``text``, ``empty_text``: the text encoder's output for the caption and for "" (caption dropout).

Its metadata records what made it: the MVDream file's name and size in bytes, the image size, the
caption, the view and frame counts. A cache that disagrees with the checkpoint or image size asked
for is stale; one that disagrees with the object (caption edited, frames added) is a mismatch.
Files are written to ``latents.safetensors.partial`` and renamed, so an interrupted run leaves
none half written and a rerun encodes only what is missing. ``shard_objects(objects, I, N)`` takes every N-th
object (sorted by name) from the I-th: disjoint shards that together cover the dataset.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..diffusers_host import build_text_encoder, build_vae, clip_tokenizer, encode_text
from ..errors import VividZooError
from .frames import prepare_images
from .reader import MultiViewVideoDataset, VideoObject
from .shards import Shard

CACHE_FILE = "latents.safetensors"
CACHE_FORMAT = "vividzoo-latents-1"
TENSORS = ("mean", "logvar", "text", "empty_text")


@dataclass(frozen=True)
class CacheKey:
    """What a cache must have been made with to be used: the checkpoint and the image size."""

    checkpoint: str
    checkpoint_bytes: int
    image_size: int

    @classmethod
    def of(cls, mvdream: str | Path, image_size: int) -> CacheKey:
        path = Path(mvdream)
        if not path.is_file():
            raise VividZooError(f"MVDream checkpoint not found: {path}")
        return cls(path.name, path.stat().st_size, image_size)

    def metadata(self, video: VideoObject) -> dict[str, str]:
        return {"format": CACHE_FORMAT, "checkpoint": self.checkpoint, "checkpoint_bytes": str(self.checkpoint_bytes),
                "image_size": str(self.image_size), "caption": video.caption, "views": str(video.views),
                "frames": str(video.frames)}


def cache_path(video: VideoObject) -> Path:
    return video.directory / CACHE_FILE


def cache_problem(video: VideoObject, key: CacheKey | None) -> str | None:
    """Why the object's cache cannot be used (``None``: it can); with no key, staleness is not judged."""
    from safetensors import SafetensorError, safe_open

    path = cache_path(video)
    if not path.is_file():
        return f"no {CACHE_FILE}"
    try:
        with safe_open(str(path), "pt") as cache:
            metadata, names = cache.metadata() or {}, set(cache.keys())
            shapes = {name: tuple(cache.get_slice(name).get_shape()) for name in names}
    except (OSError, SafetensorError) as error:
        return f"{CACHE_FILE} is unreadable ({error})"
    if metadata.get("format") != CACHE_FORMAT or not names >= set(TENSORS):
        return f"{CACHE_FILE} is incomplete (tensors {sorted(names)}); encode it again"
    made = (f"{metadata.get('checkpoint')} ({metadata.get('checkpoint_bytes')} bytes) at "
            f"{metadata.get('image_size')} px")
    if key is not None and (metadata.get("checkpoint"), metadata.get("checkpoint_bytes"), metadata.get("image_size")) \
            != (key.checkpoint, str(key.checkpoint_bytes), str(key.image_size)):
        return f"{CACHE_FILE} is stale: made from {made}, not {key.checkpoint} ({key.checkpoint_bytes} bytes) at " \
               f"{key.image_size} px"
    size = int(metadata.get("image_size", 0))
    expected = (video.views, video.frames, shapes["mean"][2], size // 8, size // 8)
    if metadata.get("caption") != video.caption:
        return f"{CACHE_FILE} does not match the object: made for the caption {metadata.get('caption')!r}"
    if shapes["mean"] != expected or shapes["logvar"] != expected:
        return f"{CACHE_FILE} does not match the object: latents {shapes['mean']} for {video.views} views x " \
               f"{video.frames} frames at {size} px"
    return None


class LatentEncoder:
    """The checkpoint's VAE and text encoder on ``device``, writing one object's cache at a time."""

    def __init__(self, mvdream: str | Path, image_size: int, device: torch.device, chunk: int = 16) -> None:
        from ..checkpoints import load_mvdream

        checkpoint = load_mvdream(mvdream)
        self.key, self.device, self.chunk = CacheKey.of(mvdream, image_size), device, chunk
        # Channels-last, like the pixels: faster convolutions on CPUs, and in half precision on GPUs.
        self.vae = build_vae(checkpoint).to(device, memory_format=torch.channels_last)
        self.text_encoder = build_text_encoder(checkpoint).to(device)
        self.tokenizer = clip_tokenizer(checkpoint.text_shape.kind)

    @torch.no_grad()
    def encode(self, video: VideoObject) -> Path:
        from safetensors.torch import save_file

        means, logvars = [], []
        for source in video.sources:
            mean, logvar = [], []
            images = source.read(range(source.count))  # one pass: a video is decoded once, not once per chunk
            for start in range(0, source.count, self.chunk):
                pixels = prepare_images(images[start:start + self.chunk], self.key.image_size)
                posterior = self.vae.encode(pixels.to(self.device)).latent_dist
                mean.append(posterior.mean.half().cpu())
                logvar.append(posterior.logvar.half().cpu())
            means.append(torch.cat(mean))
            logvars.append(torch.cat(logvar))
        text, empty = encode_text(self.tokenizer, self.text_encoder, [video.caption, ""], self.device).half().cpu()
        tensors = {"mean": torch.stack(means), "logvar": torch.stack(logvars), "text": text, "empty_text": empty}
        path = cache_path(video)
        partial = path.with_name(path.name + ".partial")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(partial), self.key.metadata(video))
        os.replace(partial, path)
        return path


def cache_problems(objects: list[VideoObject], key: CacheKey | None) -> tuple[int, list[str]] | None:
    """Caches that exist but cannot be used and, with ``key`` (a checkpoint and size), objects without a fresh one:
    ``(usable caches, problem lines)``; None when there are no caches and none are asked for."""
    cached = [video for video in objects if cache_path(video).exists()]
    if not cached and key is None:
        return None
    judged = objects if key else cached
    problems = [f"{video.directory.name}: {problem}" for video in judged if (problem := cache_problem(video, key))]
    return len(judged) - len(problems), problems


def shard_objects(objects: list[VideoObject], index: int, count: int) -> list[VideoObject]:
    """Part ``index`` (0-based) of ``count``, by folder name."""
    return Shard(index, count).select(objects, lambda video: video.directory.name)


def encode_dataset(objects: list[VideoObject], encoder: LatentEncoder,
                   on_progress: Callable[[int, int], None] = lambda done, total: None) -> tuple[int, int]:
    """Encodes every object whose cache is missing or unusable; returns (encoded, already done)."""
    encoded = 0
    for done, video in enumerate(objects, 1):
        if cache_problem(video, encoder.key) is not None:
            encoder.encode(video)
            encoded += 1
        on_progress(done, len(objects))
    return encoded, len(objects) - encoded


class CachedLatentDataset(MultiViewVideoDataset):
    """The same samples as :class:`MultiViewVideoDataset` (same draws per key), as cached latents."""

    def sample(self, epoch: int, index: int) -> dict:
        from safetensors import SafetensorError, safe_open

        video, view_set, frames, dropped = self.choose(epoch, index)
        first, last = frames[0], frames[-1] + 1
        order = np.asarray(frames) - first
        try:
            with safe_open(str(cache_path(video)), "pt") as cache:
                posterior = {}
                for name in ("mean", "logvar"):
                    tensor = cache.get_slice(name)
                    by_view = [tensor[v:v + 1, first:last][0][order] for v in view_set]
                    posterior[name] = torch.stack(by_view, 1).flatten(0, 1)  # frames x views, layout order
                text = cache.get_tensor("empty_text" if dropped else "text")
        except (OSError, SafetensorError) as error:
            raise VividZooError(f"{CACHE_FILE} is unreadable ({error})") from None
        return {**posterior, "text": text, "cameras": self.cameras(video, view_set, frames)}


def sample_latents(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator,
                   scaling_factor: float) -> torch.Tensor:
    """A draw from the VAE posterior, scaled for the UNet (float32); the noise comes from ``generator`` on the CPU.

    Contiguous whatever the VAE's output layout (channels-last on the image path): the UNet's float
    results depend on the memory layout, and both paths must compute the same numbers.
    """
    noise = torch.randn(mean.shape, generator=generator).to(mean.device, mean.dtype)
    return ((mean + torch.exp(0.5 * logvar) * noise).float() * scaling_factor).contiguous()

"""GPU memory a multi-view video needs: a tracer of live tensor bytes, and the formula it gives.

The tracer runs the full-size network on PyTorch's ``meta`` device (real shapes, no memory or
arithmetic) and records the largest total of live tensor storages. Attention is modelled as
flash / memory-efficient SDPA, which keeps only its output (what PyTorch uses on recent NVIDIA
GPUs). On that trace the activations of one guidance step grow exactly linearly with the images in
the batch times their latent pixels, which gives :func:`estimate_gb`. These are estimates, not GPU
measurements: the CUDA context, allocator caching and kernel workspaces come on top (the range
adds 0.5 GB and 20-50%).

:func:`check_fits` compares the low end of the activations' share with what the device has free once
the weights are loaded (CUDA free memory, or available RAM on the CPU) and refuses a request that
cannot fit, before sampling starts.
"""

from __future__ import annotations

import math
import os
import weakref
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .errors import VividZooError

# From the trace of the full-size network (MVDream v1.5 UNet + AnimateDiff v2 + alignment) in fp16.
WEIGHT_BYTES_FP16 = 2.71e9
ACTIVATION_BYTES_PER_LATENT_PIXEL_FP16 = 17.3e3
# Animate3D: its UNet (MVDream + motion modules with spatial attention + reference attention + IP-Adapter,
# 3.05 GB) and the CLIP ViT-H/14 image encoder (1.26 GB); activations 17.5e3 (256 px) to 18.3e3 (128 px) per
# latent pixel in the trace (frame 0 is denoised with the others).
ANIMATE3D_WEIGHT_BYTES_FP16 = 4.32e9
ANIMATE3D_ACTIVATION_BYTES_PER_LATENT_PIXEL_FP16 = 17.9e3
MODEL_COSTS = {
    "vividzoo": (WEIGHT_BYTES_FP16, ACTIVATION_BYTES_PER_LATENT_PIXEL_FP16),
    "animate3d": (ANIMATE3D_WEIGHT_BYTES_FP16, ANIMATE3D_ACTIVATION_BYTES_PER_LATENT_PIXEL_FP16),
}
# LGM / L4GM (the released 'big' UNet), from the same trace: weights, and activations per input image pixel
# (4 views per frame) of one forward, exactly linear in frames x views x pixels (1202 B at 128 and 256 px, 1 to 16
# frames). L4GM's interpolation model has L4GM's weights.
RECONSTRUCTION_WEIGHT_BYTES_FP16 = {"lgm": 0.830e9, "l4gm": 0.933e9}
RECONSTRUCTION_ACTIVATION_BYTES_PER_PIXEL_FP16 = 1202.0
CUDA_CONTEXT_BYTES = 0.5 * 1024**3
OVERHEAD = (1.2, 1.5)
GB = 1024**3


class LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of tensor storages alive at once, over the operations run inside the mode."""

    def __init__(self) -> None:
        super().__init__()
        self.holders: dict[int, int] = defaultdict(int)
        self.sizes: dict[int, int] = {}
        self.now = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                key = tensor.untyped_storage()._cdata
                if key not in self.sizes:
                    self.sizes[key] = tensor.untyped_storage().nbytes()
                    self.now += self.sizes[key]
                    self.peak = max(self.peak, self.now)
                self.holders[key] += 1
                weakref.finalize(tensor, self._release, key)
        return out

    def _release(self, key: int) -> None:
        self.holders[key] -= 1
        if self.holders[key] == 0:
            self.now -= self.sizes.pop(key)
            del self.holders[key]


@contextmanager
def flash_attention_model() -> Iterator[None]:
    """Within the block, SDPA allocates only its output, as flash / memory-efficient kernels do."""

    def output_only(query, key, value, *args, **kwargs):
        return query.new_empty(*query.shape[:-1], value.shape[-1])

    original = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = output_only
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


def estimate_gb(views: int, frames: int, width: int, height: int, bytes_per_value: int = 2,
                model: str = "vividzoo") -> tuple[float, float]:
    """Likely GPU memory range (GB) to sample ``views x frames`` images with guidance.

    ``frames`` is the number denoised at once: the context-window length for long videos. ``model``:
    ``vividzoo`` or ``animate3d`` (see ``MODEL_COSTS``).
    """
    weights = MODEL_COSTS[model][0]
    tensors = bytes_per_value / 2 * weights + activation_bytes(views, frames, width, height, bytes_per_value, model)
    low, high = ((tensors * factor + CUDA_CONTEXT_BYTES) / GB for factor in OVERHEAD)
    return low, high


def activation_bytes(views: int, frames: int, width: int, height: int, bytes_per_value: int = 2,
                     model: str = "vividzoo") -> float:
    """Tensor bytes one guidance step (both branches) needs beyond the weights, before overheads."""
    latent_pixels = 2 * views * frames * (width // 8) * (height // 8)
    return bytes_per_value / 2 * MODEL_COSTS[model][1] * latent_pixels


def available_bytes(device: torch.device) -> int | None:
    """Free memory for sampling on ``device``: CUDA free memory, available RAM on the CPU; None if unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        return available_ram()
    return None  # MPS shares RAM with the system and reports no free amount


def available_ram() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else free physical pages (other POSIX systems)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(views: int, frames: int, width: int, height: int, bytes_per_value: int, available: int | None,
               where: str = "on this device", model: str = "vividzoo") -> None:
    """Refuses sampling ``views x frames`` images (``frames``: at once) whose activations cannot fit.

    ``available``: free bytes with the weights already loaded. Uses the low end of the estimate, so
    only requests sure to run out of memory are refused. The message gives the largest image size
    that fits at this many frames, and the most frames at once at this size.
    """
    if available is None:
        return
    overhead = OVERHEAD[0]
    needed = overhead * activation_bytes(views, frames, width, height, bytes_per_value, model)
    if needed <= available:
        return
    room = available / overhead
    per_latent_pixel = activation_bytes(views, frames, 8, 8, bytes_per_value, model)
    size = 8 * math.isqrt(int(max(room, 0) / per_latent_pixel))
    frames_fit = int(max(room, 0) // activation_bytes(views, 1, width, height, bytes_per_value, model))
    fits = [f"at most {size}x{size} px at {frames} frames" if size >= 8 else None,
            f"at most {frames_fit} frames at once at {width}x{height} (context windows)" if frames_fit else None]
    fits = [text for text in fits if text]
    advice = " or ".join(fits) if fits else "not even the smallest video fits; free memory or use another device"
    raise VividZooError(
        f"{views} views x {frames} frames x {width}x{height} px needs at least about {needed / GB:.1f} GB "
        f"{where} (estimate), but only {available / GB:.1f} GB is free; fits: {advice}"
    )


def describe_estimate(views: int, frames: int, width: int, height: int, bytes_per_value: int = 2,
                      model: str = "vividzoo") -> str:
    """:func:`estimate_gb` as text, ``"6.1 to 7.5 GB"``: one decimal, so a narrow range never reads "4-4 GB"."""
    low, high = estimate_gb(views, frames, width, height, bytes_per_value, model)
    return f"{low:.1f} to {high:.1f} GB"


def reconstruction_estimate_gb(kind: str, frames_at_once: int, size: int = 256, interpolation: bool = False,
                               views: int = 4, bytes_per_value: int = 2) -> tuple[float, float]:
    """Likely GPU memory range (GB) of LGM (``lgm``, one frame at a time: ``frames_at_once`` 1) or L4GM (``l4gm``,
    its 16-frame window) at ``size`` px, with L4GM's interpolation model loaded beside it (``interpolation``).

    The Gaussians themselves (65 536 x 14 floats per frame at 256 px) are kept on the CPU and not counted.
    """
    weights = RECONSTRUCTION_WEIGHT_BYTES_FP16[kind] * (2 if interpolation else 1)
    activations = RECONSTRUCTION_ACTIVATION_BYTES_PER_PIXEL_FP16 * frames_at_once * views * size * size
    tensors = bytes_per_value / 2 * (weights + activations)
    low, high = ((tensors * factor + CUDA_CONTEXT_BYTES) / GB for factor in OVERHEAD)
    return low, high

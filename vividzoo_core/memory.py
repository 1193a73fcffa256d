"""GPU memory a multi-view video needs: a tracer of live tensor bytes, and the formula it gives.

The tracer runs the full-size network on PyTorch's ``meta`` device (real shapes, no memory or
arithmetic) and records the largest total of live tensor storages. Attention is modelled as
flash / memory-efficient SDPA, which keeps only its output (what PyTorch uses on recent NVIDIA
GPUs). On that trace the activations of one guidance step grow exactly linearly with the images in
the batch times their latent pixels, which gives :func:`estimate_gb`. These are estimates, not GPU
measurements: the CUDA context, allocator caching and kernel workspaces come on top (the range
adds 0.5 GB and 20-50%).
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

# From the trace of the full-size network (MVDream v1.5 UNet + AnimateDiff v2 + alignment) in fp16.
WEIGHT_BYTES_FP16 = 2.71e9
ACTIVATION_BYTES_PER_LATENT_PIXEL_FP16 = 17.3e3
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


def estimate_gb(views: int, frames: int, width: int, height: int, bytes_per_value: int = 2) -> tuple[float, float]:
    """Likely GPU memory range (GB) to sample ``views x frames`` images with guidance.

    ``frames`` is the number denoised at once: the context-window length for long videos.
    """
    scale = bytes_per_value / 2
    batch = 2 * views * frames
    tensors = scale * (WEIGHT_BYTES_FP16 + ACTIVATION_BYTES_PER_LATENT_PIXEL_FP16 * batch * (width // 8) * (height // 8))
    low, high = ((tensors * factor + CUDA_CONTEXT_BYTES) / GB for factor in OVERHEAD)
    return low, high


def describe_estimate(views: int, frames: int, width: int, height: int, bytes_per_value: int = 2) -> str:
    """:func:`estimate_gb` as text, ``"6.1 to 7.5 GB"``: one decimal, so a narrow range never reads "4-4 GB"."""
    low, high = estimate_gb(views, frames, width, height, bytes_per_value)
    return f"{low:.1f} to {high:.1f} GB"

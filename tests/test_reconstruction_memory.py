"""The LGM / L4GM memory estimate is the trace of the full-size network (on the meta device: real shapes, no memory)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from vividzoo_core.checkpoints.reconstruction import BIG
from vividzoo_core.memory import (
    CUDA_CONTEXT_BYTES,
    GB,
    OVERHEAD,
    RECONSTRUCTION_ACTIVATION_BYTES_PER_PIXEL_FP16,
    RECONSTRUCTION_WEIGHT_BYTES_FP16,
    LiveTensorBytes,
    flash_attention_model,
    reconstruction_estimate_gb,
)
from vividzoo_core.network.lgm import LGMNetwork


@pytest.mark.parametrize("kind, frames, size", [("lgm", 1, 256), ("lgm", 2, 128), ("l4gm", 3, 128)])
def test_formula_matches_a_trace_of_the_full_size_network(kind, frames, size):
    with torch.device("meta"):
        network = LGMNetwork(replace(BIG, temporal=kind == "l4gm")).half()
    weights = sum(p.numel() * p.element_size() for p in network.parameters())
    assert weights == pytest.approx(RECONSTRUCTION_WEIGHT_BYTES_FP16[kind], rel=0.001)
    inputs = torch.empty(1, frames, 4, 9, size, size, device="meta", dtype=torch.half)
    with torch.no_grad(), flash_attention_model(), LiveTensorBytes() as trace:
        network(inputs)
    assert trace.peak == pytest.approx(RECONSTRUCTION_ACTIVATION_BYTES_PER_PIXEL_FP16 * frames * 4 * size**2,
                                       rel=0.001)


def test_the_estimate_adds_weights_window_and_overheads():
    low, high = reconstruction_estimate_gb("l4gm", 16, interpolation=True)
    images = 16 * 4  # L4GM's window of 16 frames x 4 views
    activations = RECONSTRUCTION_ACTIVATION_BYTES_PER_PIXEL_FP16 * images * 256**2
    tensors = 2 * RECONSTRUCTION_WEIGHT_BYTES_FP16["l4gm"] + activations
    assert (low, high) == pytest.approx([(tensors * f + CUDA_CONTEXT_BYTES) / GB for f in OVERHEAD])
    assert reconstruction_estimate_gb("lgm", 1)[1] < 2.5 < low < high < 11  # LGM per frame: 2 GB; L4GM: 8 to 10 GB

"""Tolerances for comparing floats computed along two code paths, derived from the numerics, never tuned on one CPU.

Two paths that do the same math in another order (AVX2 or AVX512 kernels, channels_last or contiguous, sdpa or
written-out attention, diffusers or plain PyTorch, batched or chunked, this CPU or the one that recorded a fixture)
differ only by rounding. Each path is within its rounding error of the exact result, so the two are within twice
that of each other. The rounding error of a float32 computation is ``e x 2^-24`` of its largest magnitude, where
``e`` depends on the math (how many roundings, how much the network amplifies them), not on the CPU: another CPU
sums in another order and lands elsewhere in the same range. :func:`rounding_units` measures ``e`` against float64.

The measured numbers hold for the inputs measured. Not covered: the training loss, where the tiny network's 1x1
bottom GroupNorms amplified a last-bit input difference 1e4-fold at one timestep (tests/test_latent_cache.py), and
anything after an optimiser step (Adam divides a gradient by its own running size, so a 1e-12 difference of a
near-zero gradient becomes a learning-rate-sized step). Compare those bit for bit, giving both paths the same
numbers. See docs/CONTRIBUTING.md, "Float comparisons".
"""

from __future__ import annotations

import torch

UNIT_ROUNDOFF = {torch.float64: 2.0**-53, torch.float32: 2.0**-24, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}

# The float32 rounding error of the tiny random test networks' outputs, in units of 2^-24 of the largest magnitude,
# measured by ``rounding_units``: a motion module 6, the MVDream UNet on 8x8 latents 21, Animate3D's UNet on the
# 64 px fixture 23, the CLIP image encoder 5, the VAE encoder 17 (64 px) and 78 (256 px). tests/test_tolerances.py
# checks the bound on whatever CPU runs the tests.
TINY_NETWORK_ROUNDING_UNITS = 100

# Headroom over the measured error: another summation order, another element being the worst.
SAFETY = 2.0


def rounding_tolerance(dtype: torch.dtype = torch.float32, units: float = TINY_NETWORK_ROUNDING_UNITS,
                       amplification: float = 1.0) -> float:
    """Largest difference, relative to the largest magnitude, between two evaluations of the same math in ``dtype``:
    both paths' rounding errors (2 x ``units`` x unit roundoff), times what the math after the network does to them
    (``amplification``: 1 + 2 x cfg for a guided step, the number of network calls for a run), times SAFETY."""
    return 2 * units * UNIT_ROUNDOFF[dtype] * amplification * SAFETY


def relative_difference(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest absolute difference over the largest magnitude of ``expected``."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    actual, expected = actual.detach().double(), expected.detach().double()
    return float((actual - expected).abs().max() / expected.abs().max())


def assert_equal_up_to_rounding(actual: torch.Tensor, expected: torch.Tensor, tolerance: float) -> None:
    """``actual`` is ``expected`` within ``tolerance`` (from :func:`rounding_tolerance`) of its largest magnitude."""
    difference = relative_difference(actual, expected)
    assert difference <= tolerance, f"relative difference {difference:.3g} > tolerance {tolerance:.3g}"


def rounding_units(function, module: torch.nn.Module, *inputs: torch.Tensor) -> float:
    """The float32 rounding error of ``function(*inputs)`` (``module`` holds its weights), in units of 2^-24 of the
    largest magnitude: float32 against float64 on the same float32 numbers. Leaves ``module`` in float32."""
    with torch.no_grad():
        single = function(*(x.float() for x in inputs))
        module.double()
        double = function(*(x.double() for x in inputs))
        module.float()
    return relative_difference(single, double) / UNIT_ROUNDOFF[torch.float32]

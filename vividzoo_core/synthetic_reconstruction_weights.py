"""Random-weight LGM / L4GM / L4GM-interpolation files in the real key layouts, for tests and demos.

The layout is :func:`vividzoo_core.checkpoints.reconstruction.lgm_key_shapes` (checked against the original
classes' full-size key lists in ``tests/test_lgm_checkpoints.py``); ``TINY`` keeps every key at small widths.
Every tensor is random (norm scales ``1 + N(0, 0.1)``, biases ``N(0, 0.1)``), so equality tests see each one.
The two output convolutions get a smaller scale, so the raw values stay about unit size and the
activations (the clamp of positions most) are exercised on both sides of their bends.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from .checkpoints.files import save_weights
from .checkpoints.reconstruction import L4GM, L4GM_INTERP, LGM, TINY, LGMShape, lgm_key_shapes

FILE_NAMES = {LGM: "model_fp16_fixrot.safetensors", L4GM: "recon.safetensors", L4GM_INTERP: "interp.safetensors"}
"""The released files' names (``TEST-RANDOM-`` prefixed by the writers that install them for users)."""
SEEDS = {LGM: 21, L4GM: 22, L4GM_INTERP: 23}


def lgm_state_dict(kind: str, shape: LGMShape = TINY, seed: int | None = None,
                   dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Seeded random tensors for every key of ``kind`` (``lgm``: no temporal attention)."""
    generator = torch.Generator().manual_seed(SEEDS[kind] if seed is None else seed)
    tensors = {}
    for key, size in lgm_key_shapes(replace(shape, temporal=kind != LGM)).items():
        if len(size) > 1:
            fan_in = math.prod(size[1:])
            gain = 0.9 if key.startswith(("unet.conv_out.", "conv.")) else 1.0
            tensor = torch.randn(size, generator=generator) * gain / math.sqrt(fan_in)
        elif key.endswith(".weight") and ".norm" in key:
            tensor = 1 + 0.1 * torch.randn(size, generator=generator)
        else:
            tensor = 0.1 * torch.randn(size, generator=generator)
        tensors[key] = tensor.to(dtype)
    return tensors


def write_lgm_test_weights(directory: str | Path, shape: LGMShape = TINY, dtype: torch.dtype = torch.float32,
                           prefix: str = "", log: Callable[[str], None] = lambda message: None) -> dict[str, Path]:
    """The three files under their release names (plus ``prefix``) in ``directory``: ``{kind: path}``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return {kind: save_weights(directory / f"{prefix}{name}", lgm_state_dict(kind, shape, dtype=dtype), log)
            for kind, name in FILE_NAMES.items()}

"""Building a diffusers model from LDM-named weights, proving every tensor was used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError


def load_converted(
    model_class: Any,
    config: dict[str, Any],
    weights: dict[str, torch.Tensor],
    convert: Callable[[dict[str, torch.Tensor], dict[str, Any]], dict[str, torch.Tensor]],
    part: str,
    path: Path,
) -> Any:
    """``model_class(**config)`` with ``convert(weights, config)`` loaded strictly.

    The LDM -> diffusers conversions are one-to-one; a count mismatch means a tensor was dropped.
    """
    converted = convert(weights, config)
    if len(converted) != len(weights):
        # The conversions move tensors (or views of them): a file tensor whose memory no converted
        # tensor uses is one the conversion dropped.
        used = {tensor.untyped_storage().data_ptr() for tensor in converted.values()}
        dropped = [key for key, tensor in weights.items() if tensor.untyped_storage().data_ptr() not in used]
        named = f": {', '.join(dropped[:3])}" if dropped else ""
        raise CheckpointError(
            path,
            f"the {part} weights do not convert cleanly: {len(weights) - len(converted)} tensors have no place{named}",
        )
    with torch.device("meta"):
        model = model_class(**config)
    load_strict(model, converted, part, path)
    return model.eval().requires_grad_(False)


def load_strict(model: torch.nn.Module, weights: dict[str, torch.Tensor], part: str, path: Path) -> None:
    """Loads every tensor into ``model`` (missing, unexpected or misshapen ones are named in the error)."""
    try:
        model.load_state_dict(weights, strict=True, assign=True)
    except RuntimeError as error:
        raise CheckpointError(path, f"the {part} weights do not fit the {part} architecture: {error}") from None

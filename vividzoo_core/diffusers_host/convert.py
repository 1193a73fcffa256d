"""Building a diffusers model from LDM-named weights, proving every tensor was used."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

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
        dropped = len(weights) - len(converted)
        raise CheckpointError(path, f"the {part} weights do not convert cleanly: {dropped} tensors have no place")
    with torch.device("meta"):
        model = model_class(**config)
    try:
        model.load_state_dict(converted, strict=True, assign=True)
    except RuntimeError as error:
        raise CheckpointError(path, f"the {part} weights do not fit the {part} architecture: {error}") from None
    return model.eval().requires_grad_(False)

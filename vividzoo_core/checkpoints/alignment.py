"""This project's alignment-layer file format (no public Vivid-ZOO weights exist; we define it).

A ``.safetensors`` file holding, for every motion module it belongs to,
``{site}.temporal_transformer.align_3d_to_2d.{weight,bias}`` and ``...align_2d_to_3d.{weight,bias}``
(``site`` as in the motion-module file, e.g. ``mid_block.motion_modules.0``), and string metadata:

- ``format``: ``vividzoo-alignment``; ``format_version``: ``1``
- ``motion_module_version``: ``v1`` / ``v2`` / ``v3``: the motion module it was trained with
- ``channel_layout``: JSON ``{site: channels}`` in UNet order
- ``info``: JSON, free-form provenance (base checkpoints, training steps, data); optional
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, VividZooError
from .animate3d import is_animate3d
from .files import LoadedFile, read_checkpoint
from .motion import SITE, VERSION_NAMES, has_motion_modules

FORMAT = "vividzoo-alignment"
FORMAT_VERSION = "1"
KEY_PATTERN = re.compile(
    rf"^(?P<site>{SITE})\.temporal_transformer\.(?P<layer>align_3d_to_2d|align_2d_to_3d)\.(?P<param>weight|bias)$"
)


@dataclass
class AlignmentCheckpoint:
    weights: dict[str, torch.Tensor]
    motion_version: str
    channels: dict[str, int]
    info: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.path.name if self.path else "alignment weights"

    @property
    def parameter_count(self) -> int:
        return sum(t.numel() for t in self.weights.values())

    def check_fits(self, motion_version: str, channels: dict[str, int]) -> None:
        """Refuses use with a motion module of another version or layout than it was trained with."""
        if motion_version != self.motion_version:
            raise VividZooError(
                f"{self.name} was trained with {VERSION_NAMES.get(self.motion_version, self.motion_version)} "
                f"motion modules but the loaded motion module is {VERSION_NAMES.get(motion_version, motion_version)}; "
                f"load the {self.motion_version} motion module, or alignment weights trained for {motion_version}"
            )
        if channels != self.channels:
            differing = sorted(set(channels.items()) ^ set(self.channels.items()))[:3]
            raise VividZooError(
                f"{self.name} does not fit the loaded motion module's layout (differs at {differing}); "
                f"it was made for another UNet size"
            )


def alignment_checkpoint(
    weights: dict[str, torch.Tensor], motion_version: str, info: dict[str, Any] | None = None
) -> AlignmentCheckpoint:
    """Wraps alignment tensors (as ``MotionModuleSet.alignment_state_dict`` gives them) for saving."""
    channels = {}
    for key, tensor in weights.items():
        match = KEY_PATTERN.match(key)
        if match and match["layer"] == "align_3d_to_2d" and match["param"] == "weight":
            channels[match["site"]] = tensor.shape[0]
    return AlignmentCheckpoint(dict(weights), motion_version, channels, dict(info or {}))


def save_alignment(checkpoint: AlignmentCheckpoint, path: str | Path) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise VividZooError(f"alignment files are .safetensors; got {path.name}")
    _validate(checkpoint.weights, checkpoint.channels, path)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "motion_module_version": checkpoint.motion_version,
        "channel_layout": json.dumps(checkpoint.channels),
        "info": json.dumps(checkpoint.info, default=str),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in checkpoint.weights.items()}
    save_file(tensors, str(path), metadata=metadata)
    return path


def load_alignment(path: str | Path) -> AlignmentCheckpoint:
    return parse_alignment(read_checkpoint(path))


def parse_alignment(loaded: LoadedFile) -> AlignmentCheckpoint:
    path, meta = loaded.path, loaded.metadata
    if meta.get("format") != FORMAT:
        if is_animate3d(loaded):
            kind = ("Animate3D's trained model (animate3d_motion_modules.ckpt), a model of its own; load it as the "
                    "Animate3D model, not as Vivid-ZOO alignment")
        elif has_motion_modules(k for k in loaded.tensors if "align_" not in k):
            kind = "an AnimateDiff motion module; load it as the motion module"
        elif any(k.startswith(("model.diffusion_model.", "input_blocks.")) for k in loaded.tensors):
            kind = "a Stable Diffusion / MVDream checkpoint; load it as the MVDream model"
        else:
            kind = f"not a Vivid-ZOO alignment file (its metadata has no format '{FORMAT}')"
        raise CheckpointError(path, f"this is {kind}. Alignment files are .safetensors written by `vividzoo train`")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            path,
            f"alignment format version {meta.get('format_version')!r}; this Vivid-ZOO reads version {FORMAT_VERSION}",
        )
    version = meta.get("motion_module_version", "")
    if version not in VERSION_NAMES:
        raise CheckpointError(
            path, f"unknown motion_module_version {version!r}; expected one of {sorted(VERSION_NAMES)}"
        )
    try:
        channels = {str(k): int(v) for k, v in json.loads(meta["channel_layout"]).items()}
        info = json.loads(meta.get("info", "{}"))
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(path, f"damaged alignment metadata ({error})") from None
    _validate(loaded.tensors, channels, path)
    return AlignmentCheckpoint(loaded.tensors, version, channels, info, path)


def _validate(weights: dict[str, torch.Tensor], channels: dict[str, int], path: Path) -> None:
    expected = {}
    for site, width in channels.items():
        for layer in ("align_3d_to_2d", "align_2d_to_3d"):
            expected[f"{site}.temporal_transformer.{layer}.weight"] = (width, width)
            expected[f"{site}.temporal_transformer.{layer}.bias"] = (width,)
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            path,
            f"alignment tensors do not match its channel layout (missing {missing[:3]}, unexpected {unexpected[:3]})",
        )
    for key, shape in expected.items():
        if tuple(weights[key].shape) != shape:
            raise CheckpointError(path, f"{key} has shape {tuple(weights[key].shape)}, expected {shape}")
        if not torch.isfinite(weights[key]).all():
            raise CheckpointError(path, f"{key} holds NaN or infinite values (a diverged training run?)")

"""What a checkpoint file is, or why it cannot be used: the ``vividzoo inspect`` report."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch

from .alignment import FORMAT as ALIGNMENT_FORMAT
from .alignment import parse_alignment
from .files import LoadedFile, read_checkpoint
from .motion import VERSION_NAMES, has_motion_modules, parse_motion_module
from .mvdream import FAMILY_NAMES, split_mvdream


def inspect_checkpoint(path: str | Path) -> dict[str, Any]:
    """A JSON-ready description; raises :class:`CheckpointError` saying why a file is not usable."""
    loaded = read_checkpoint(path)
    report: dict[str, Any] = {"file": str(loaded.path), "size_bytes": loaded.path.stat().st_size}
    if loaded.metadata.get("format") == ALIGNMENT_FORMAT:
        alignment = parse_alignment(loaded)
        report.update(
            kind="alignment",
            description=f"Vivid-ZOO alignment layers for {VERSION_NAMES[alignment.motion_version]} motion modules",
            motion_module_version=alignment.motion_version,
            modules=len(alignment.channels),
            channels=sorted(set(alignment.channels.values())),
            parameters=alignment.parameter_count,
            info=alignment.info,
        )
    elif has_motion_modules(loaded.tensors):
        motion = parse_motion_module(loaded)
        report.update(
            kind="motion_module",
            description=VERSION_NAMES[motion.version],
            version=motion.version,
            modules=len(motion.channels),
            channels=sorted(set(motion.channels.values())),
            max_frames=motion.max_frames,
            parameters=motion.parameter_count,
            set_aside=len(motion.set_aside),
        )
    else:
        mvdream = split_mvdream(loaded)
        shape = mvdream.unet_shape
        report.update(
            kind="mvdream",
            description=FAMILY_NAMES[mvdream.family],
            family=mvdream.family,
            parts=[name for name, part in (("unet", mvdream.unet), ("vae", mvdream.vae),
                                           ("text_encoder", mvdream.text_encoder)) if part is not None],
            views_trained=4,
            channels=list(shape.block_channels),
            context_dim=shape.context_dim,
            parameters=mvdream.parameter_count,
            set_aside=len(mvdream.set_aside),
        )
    report["dtype"] = _main_dtype(loaded)
    return report


def _main_dtype(loaded: LoadedFile) -> str:
    counts = Counter(t.dtype for t in loaded.tensors.values() if t.is_floating_point())
    dtype = counts.most_common(1)[0][0] if counts else torch.float32
    return str(dtype).replace("torch.", "")

"""What a checkpoint file is, or why it cannot be used: the ``vividzoo inspect`` report."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch

from .alignment import FORMAT as ALIGNMENT_FORMAT
from .alignment import parse_alignment
from .animate3d import is_animate3d, parse_animate3d
from .clip_vision import is_clip_vision, parse_clip_vision
from .files import LoadedFile, read_checkpoint
from .ip_adapter import ip_adapter_parts, parse_ip_adapter
from .motion import VERSION_NAMES, has_motion_modules, parse_motion_module
from .mvdream import FAMILY_NAMES, split_mvdream
from .reconstruction import KIND_NAMES, file_kind, is_reconstruction, parse_reconstruction


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
    elif is_reconstruction(loaded):
        reconstruction = parse_reconstruction(loaded, file_kind(loaded))
        report.update(
            kind=reconstruction.kind,
            description=KIND_NAMES[reconstruction.kind],
            family="reconstruction",
            views=4,
            down_channels=list(reconstruction.shape.down_channels),
            up_channels=list(reconstruction.shape.up_channels),
            temporal_attention=reconstruction.shape.temporal,
            parameters=reconstruction.parameter_count,
            set_aside=len(reconstruction.set_aside),
        )
    elif is_animate3d(loaded):
        animate3d = parse_animate3d(loaded)
        report.update(
            kind="animate3d",
            description="Animate3D's trained multi-view video model (MV-VDM), "
                        + ("motion modules and reference attention only" if animate3d.form == "modules"
                           else "the whole UNet"),
            form=animate3d.form,
            needs=["mvdream (VAE, text encoder" + (", UNet)" if animate3d.form == "modules" else ")"),
                   "clip_vision"] + (["ip_adapter"] if animate3d.form == "modules" else []),
            modules=len(animate3d.channels),
            channels=sorted(set(animate3d.channels.values())),
            max_frames=animate3d.pe_length,
            parameters=animate3d.parameter_count,
            set_aside=len(animate3d.set_aside),
        )
    elif ip_adapter_parts(loaded) is not None:
        ip_adapter = parse_ip_adapter(loaded)
        report.update(
            kind="ip_adapter",
            description=f"IP-Adapter for Stable Diffusion 1.5 ({len(ip_adapter.layers)} cross-attention layers, "
                        f"4 image tokens)",
            clip_width=ip_adapter.clip_width,
            context_dim=ip_adapter.context_dim,
            layers=len(ip_adapter.layers),
            parameters=ip_adapter.parameter_count,
        )
    elif is_clip_vision(loaded):
        clip_vision = parse_clip_vision(loaded)
        shape = clip_vision.shape
        report.update(
            kind="clip_vision",
            description=shape.name,
            width=shape.width,
            layers=shape.layers,
            embedding_width=shape.projection,
            image_size=shape.image_size,
            parameters=clip_vision.parameter_count,
            set_aside=len(clip_vision.set_aside),
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

"""CLIP image encoders as ComfyUI keeps them in ``models/clip_vision`` (Hugging Face layout).

IP-Adapter SD 1.5 (and so Animate3D) needs the ViT-H/14 image encoder that h94/IP-Adapter ships as
``models/image_encoder/model.safetensors``; ComfyUI_IPAdapter_plus users keep it renamed as
``CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors``. Keys are transformers' ``CLIPVisionModelWithProjection``
names: ``vision_model.{embeddings,pre_layrnorm,encoder.layers.N,post_layernorm}.*`` and
``visual_projection.weight``, whose output width (1024 for ViT-H) is what the IP-Adapter reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError
from .files import LoadedFile, read_checkpoint
from .ip_adapter import is_ip_adapter

CLIP_VISION_DOWNLOAD_HINT = (
    "Animate3D's IP-Adapter needs the CLIP ViT-H/14 image encoder: h94/IP-Adapter "
    "models/image_encoder/model.safetensors, kept by ComfyUI_IPAdapter_plus users as "
    "ComfyUI/models/clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
)
# Released encoders by (width, layers); heads are not in the weights: 16 for all three.
KNOWN_ENCODERS = {
    (1024, 24): "CLIP ViT-L/14 (OpenAI; SD 1.5 IP-Adapters do not use it)",
    (1280, 32): "CLIP ViT-H/14 (LAION-2B, the SD 1.5 IP-Adapter encoder)",
    (1664, 48): "CLIP ViT-bigG/14 (LAION-2B, for SDXL IP-Adapters)",
}
POSITION_IDS = "vision_model.embeddings.position_ids"


@dataclass(frozen=True)
class ClipVisionShape:
    width: int
    layers: int
    intermediate: int
    patch: int
    image_size: int
    projection: int

    @property
    def heads(self) -> int:
        """16 for the released ViT-L/H/bigG encoders; 64-channel heads for smaller (test) widths."""
        return 16 if self.width >= 1024 else max(1, self.width // 64)

    @property
    def name(self) -> str:
        return KNOWN_ENCODERS.get(
            (self.width, self.layers), f"CLIP image encoder ({self.width} wide, {self.layers} layers)"
        )


@dataclass
class ClipVisionCheckpoint:
    path: Path
    weights: dict[str, torch.Tensor]
    shape: ClipVisionShape
    set_aside: dict[str, str] = field(default_factory=dict)

    @property
    def parameter_count(self) -> int:
        return sum(t.numel() for t in self.weights.values())

    def check_fits(self, embedding_width: int, reader: str) -> None:
        """Refuses an encoder whose image embeddings are not as wide as ``reader`` (the IP-Adapter) reads."""
        if self.shape.projection != embedding_width:
            raise CheckpointError(
                self.path, f"this {self.shape.name} gives {self.shape.projection}-wide image embeddings but {reader} "
                f"reads {embedding_width}-wide ones. {CLIP_VISION_DOWNLOAD_HINT}")


def load_clip_vision(path: str | Path) -> ClipVisionCheckpoint:
    return parse_clip_vision(read_checkpoint(path))


def is_clip_vision(loaded: LoadedFile) -> bool:
    """Whether a file's names are a CLIP image encoder's (Hugging Face layout); :func:`parse_clip_vision` checks
    the rest."""
    return any(key.startswith("vision_model.") for key in loaded.tensors)


def parse_clip_vision(loaded: LoadedFile) -> ClipVisionCheckpoint:
    path, tensors = loaded.path, loaded.tensors
    if not is_clip_vision(loaded):
        raise CheckpointError(path, _not_clip_vision_reason(loaded))
    if "visual_projection.weight" not in tensors:
        raise CheckpointError(
            path, "this CLIP image encoder has no visual_projection (a CLIPVisionModel without projection); the "
            f"IP-Adapter reads projected image embeddings. {CLIP_VISION_DOWNLOAD_HINT}",
        )
    weights, set_aside = (
        {},
        {key: f"non-tensor entry ({type(v).__name__}); not needed" for key, v in loaded.extras.items()},
    )
    for key, tensor in tensors.items():
        if key == POSITION_IDS:
            set_aside[key] = "position index buffer; the encoder rebuilds it"
        elif key.startswith("vision_model.") or key == "visual_projection.weight":
            weights[key] = tensor
        else:
            set_aside[key] = "not part of a CLIP image encoder (unrecognised name)"
    try:
        patch = weights["vision_model.embeddings.patch_embedding.weight"]
        positions = weights["vision_model.embeddings.position_embedding.weight"].shape[0]
        layers = len({m.group(1) for k in weights if (m := re.match(r"vision_model\.encoder\.layers\.(\d+)\.", k))})
        grid = round((positions - 1) ** 0.5)
        shape = ClipVisionShape(
            width=patch.shape[0],
            layers=layers,
            intermediate=weights["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
            patch=patch.shape[-1],
            image_size=grid * patch.shape[-1],
            projection=weights["visual_projection.weight"].shape[0],
        )
    except KeyError as error:
        raise CheckpointError(path, f"the CLIP image encoder weights are incomplete: missing {error}") from None
    return ClipVisionCheckpoint(path, weights, shape, set_aside)


def _not_clip_vision_reason(loaded: LoadedFile) -> str:
    keys = loaded.tensors.keys()
    if any(k.startswith("visual.") for k in keys):
        return (f"this is an OpenCLIP-format image encoder (visual.*); use the Hugging Face-format file. "
                f"{CLIP_VISION_DOWNLOAD_HINT}")
    if is_ip_adapter(loaded):
        return f"this is an IP-Adapter, not its image encoder. {CLIP_VISION_DOWNLOAD_HINT}"
    return f"no CLIP image encoder weights found (vision_model.*). {CLIP_VISION_DOWNLOAD_HINT}"

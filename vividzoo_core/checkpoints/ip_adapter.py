"""IP-Adapter SD 1.5 (h94/IP-Adapter ``models/ip-adapter_sd15.bin`` / ``.safetensors``), as ComfyUI users keep
it in ``ComfyUI/models/ipadapter``.

Layouts: the ``.bin`` is ``{"image_proj": {...}, "ip_adapter": {...}}``; the ``.safetensors`` flattens it to
``image_proj.*`` and ``ip_adapter.*``. ``image_proj`` is the image projection (``proj``: Linear from the CLIP
image-embedding width, 1024 for ViT-H, to 4 tokens of the UNet's context width; ``norm``: LayerNorm).
``ip_adapter.{2i+1}.to_{k,v}_ip.weight`` is the i-th cross-attention of the UNet, counted in diffusers'
``attn_processors`` order (down blocks, up blocks, mid block): IP-Adapter numbered every attention
processor, self-attentions taking the even numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError, VividZooError
from .files import LoadedFile, read_checkpoint

IP_ADAPTER_DOWNLOAD_HINT = (
    "Animate3D uses the plain SD 1.5 IP-Adapter: ip-adapter_sd15.bin or ip-adapter_sd15.safetensors "
    "(h94/IP-Adapter, models/), in ComfyUI/models/ipadapter"
)
IMAGE_TOKENS = 4
SDXL_CONTEXT = 2048
LAYER_PATTERN = re.compile(r"^(\d+)\.(to_k_ip|to_v_ip)\.weight$")


@dataclass
class IPAdapterCheckpoint:
    path: Path
    image_projection: dict[str, torch.Tensor]
    """diffusers ``ImageProjection`` names: ``image_embeds.{weight,bias}``, ``norm.{weight,bias}``."""
    layers: list[tuple[torch.Tensor, torch.Tensor]]
    """``(to_k_ip, to_v_ip)`` weights of each cross-attention, in diffusers' processor order."""
    set_aside: dict[str, str] = field(default_factory=dict)

    @property
    def clip_width(self) -> int:
        """Width of the CLIP image embedding it reads (1024: ViT-H/14)."""
        return self.image_projection["image_embeds.weight"].shape[1]

    @property
    def context_dim(self) -> int:
        return self.image_projection["norm.weight"].shape[0]

    @property
    def layer_widths(self) -> list[int]:
        return [to_k.shape[0] for to_k, _ in self.layers]

    @property
    def parameter_count(self) -> int:
        return sum(t.numel() for t in self.image_projection.values()) + sum(
            k.numel() + v.numel() for k, v in self.layers
        )

    def check_fits(self, context_dim: int, cross_attention_widths: list[int]) -> None:
        """Refuses use with a UNet of another context width or cross-attention layout."""
        if self.context_dim != context_dim or self.layer_widths != cross_attention_widths:
            raise VividZooError(
                f"{self.path.name} does not fit the UNet: it has {len(self.layers)} cross-attention layers of "
                f"widths {self.layer_widths} and context width {self.context_dim}, the UNet "
                f"{len(cross_attention_widths)} "
                f"of widths {cross_attention_widths} and context width {context_dim}. {IP_ADAPTER_DOWNLOAD_HINT}"
            )


def load_ip_adapter(path: str | Path) -> IPAdapterCheckpoint:
    return parse_ip_adapter(read_checkpoint(path))


def is_ip_adapter(loaded: LoadedFile) -> bool:
    """Whether a file's names are an IP-Adapter's (either layout); :func:`parse_ip_adapter` checks the rest."""
    return bool({"image_proj", "ip_adapter"} & set(loaded.extras)) or any(
        key.startswith(("image_proj.", "ip_adapter.")) for key in loaded.tensors)


def ip_adapter_parts(loaded: LoadedFile) -> tuple[dict, dict] | None:
    """``(image_proj, ip_adapter)`` tensors of either layout, or None when the file has neither part."""
    if isinstance(loaded.extras.get("image_proj"), dict) and isinstance(loaded.extras.get("ip_adapter"), dict):
        return loaded.extras["image_proj"], loaded.extras["ip_adapter"]
    image_proj = {k[len("image_proj."):]: v for k, v in loaded.tensors.items() if k.startswith("image_proj.")}
    ip_adapter = {k[len("ip_adapter."):]: v for k, v in loaded.tensors.items() if k.startswith("ip_adapter.")}
    return (image_proj, ip_adapter) if image_proj and ip_adapter else None


def parse_ip_adapter(loaded: LoadedFile) -> IPAdapterCheckpoint:
    path = loaded.path
    parts = ip_adapter_parts(loaded)
    if parts is None:
        raise CheckpointError(
            path, f"not an IP-Adapter (no image_proj / ip_adapter weights). {IP_ADAPTER_DOWNLOAD_HINT}"
        )
    image_proj, ip_adapter = parts
    _refuse_variants(path, image_proj, ip_adapter)
    unused = [k for k in loaded.tensors if not k.startswith(("image_proj.", "ip_adapter."))]
    unused += [
        f"image_proj.{k}" for k in image_proj if k not in ("proj.weight", "proj.bias", "norm.weight", "norm.bias")
    ]
    unused += [f"ip_adapter.{k}" for k in ip_adapter if not LAYER_PATTERN.match(k)]
    if unused:
        raise CheckpointError(
            path, f"unexpected tensors for an IP-Adapter: {', '.join(sorted(unused)[:3])}. {IP_ADAPTER_DOWNLOAD_HINT}"
        )
    projection = {"image_embeds.weight": image_proj["proj.weight"], "image_embeds.bias": image_proj["proj.bias"],
                  "norm.weight": image_proj["norm.weight"], "norm.bias": image_proj["norm.bias"]}
    context = projection["norm.weight"].shape[0]
    if projection["image_embeds.weight"].shape[0] != IMAGE_TOKENS * context:
        raise CheckpointError(
            path, f"the image projection makes {projection['image_embeds.weight'].shape[0] / context:g} tokens; the "
            f"plain IP-Adapter makes {IMAGE_TOKENS}. {IP_ADAPTER_DOWNLOAD_HINT}")
    numbers = sorted({int(m.group(1)) for k in ip_adapter if (m := LAYER_PATTERN.match(k))})
    if numbers != list(range(1, 2 * len(numbers), 2)):
        raise CheckpointError(path, f"cross-attention layers numbered {numbers[:4]}...; expected 1, 3, 5, ... "
                                    f"(damaged or not an SD 1.5 IP-Adapter)")
    layers = []
    for number in numbers:
        try:
            layers.append((ip_adapter[f"{number}.to_k_ip.weight"], ip_adapter[f"{number}.to_v_ip.weight"]))
        except KeyError as error:
            raise CheckpointError(path, f"incomplete IP-Adapter: missing ip_adapter.{error.args[0]}") from None
    for to_k, to_v in layers:
        if to_k.shape[1] != context or to_v.shape != to_k.shape:
            raise CheckpointError(
                path, f"an IP-Adapter layer reads {to_k.shape[1]}-wide tokens, the projection makes {context}"
            )
    extras = {k: f"non-tensor entry ({type(v).__name__}); not needed"
              for k, v in loaded.extras.items() if k not in ("image_proj", "ip_adapter")}
    return IPAdapterCheckpoint(path, projection, layers, extras)


def _refuse_variants(path: Path, image_proj: dict, ip_adapter: dict) -> None:
    widths = {t.shape[-1] for k, t in ip_adapter.items() if k.endswith("_ip.weight")}
    if SDXL_CONTEXT in widths or len(ip_adapter) > 2 * 16 + 8:
        raise CheckpointError(
            path, f"this is an SDXL IP-Adapter (cross-attention width {SDXL_CONTEXT}, {len(ip_adapter) // 2} layers); "
            f"Animate3D is built on Stable Diffusion 1.5. {IP_ADAPTER_DOWNLOAD_HINT}")
    if "latents" in image_proj or "proj_in.weight" in image_proj:
        kind = "an IP-Adapter Plus (Resampler, 16 image tokens from the CLIP hidden states)"
    elif "proj.0.weight" in image_proj or "proj.3.weight" in image_proj:
        kind = "an IP-Adapter Full Face"
    elif any(k.startswith("perceiver_resampler") for k in image_proj) or any("lora" in k for k in ip_adapter):
        kind = "an IP-Adapter FaceID"
    else:
        return
    raise CheckpointError(path, f"this is {kind}; Animate3D was trained with the plain IP-Adapter (4 image tokens). "
                                f"{IP_ADAPTER_DOWNLOAD_HINT}")

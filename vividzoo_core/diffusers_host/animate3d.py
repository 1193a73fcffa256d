"""Animate3D's network on the same diffusers UNet as Vivid-ZOO (:class:`VividZooUNet`).

- ``attn1``: MVDream's multi-view attention plus the reference attention to frame 0
  (:class:`ReferenceMultiViewAttention`, weights ``to_q_i2v`` / ``to_out_i2v``).
- ``attn2``: text cross-attention plus the IP-Adapter's decoupled image cross-attention
  (:class:`IPAdapterCrossAttention`): ``attn(q, text) + scale * attn(q, image tokens)``, summed before ``to_out``
  (Animate3D's ``IPAdapterXFormersAttnProcessor``, scale 1.0). The image tokens ride at the end of the
  context: the network appends them, so every batch slice keeps its own.
- Motion modules: the shared AnimateDiff modules with Animate3D's spatio-temporal attention and diffusers'
  GroupNorm over all frames of a clip.
- Image tokens: the IP-Adapter's image projection (``proj`` + ``norm``) of the CLIP image embedding.

The math of each processor is in ``network/animate3d.py``, shared with the ComfyUI nodes.

Processor weights are registered under ``...attnN.processor.*`` as in Animate3D's UNet, so its tensors load by name.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..checkpoints.animate3d import Animate3DCheckpoint
from ..checkpoints.clip_vision import ClipVisionCheckpoint
from ..checkpoints.ip_adapter import IMAGE_TOKENS, IPAdapterCheckpoint
from ..checkpoints.mvdream import MVDreamCheckpoint
from ..errors import VividZooError
from ..layout import VideoLayout
from ..network.animate3d import (
    ImageProjection,
    animate3d_motion_modules,
    decoupled_cross_attention,
    reference_multiview_attention,
    require_exact,
)
from ..network.motion_module import MotionModuleSet
from .convert import load_strict
from .unet import VividZooUNet, build_unet, unet_config


class ReferenceMultiViewAttention(nn.Module):
    """``attn1`` processor: multi-view self-attention + reference attention to frame 0 (``MVDreamI2V...``)."""

    def __init__(self, slot: Any, channels: int) -> None:
        super().__init__()
        self.slot = slot
        self.to_q_i2v = nn.Linear(channels, channels, bias=False)
        self.to_out_i2v = nn.Linear(channels, channels)

    def forward(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                temb=None, **kwargs: Any) -> torch.Tensor:
        layout = self.slot.layout or VideoLayout(1, 1)
        q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        out = reference_multiview_attention(q, k, v, self.to_q_i2v(hidden_states), attn.heads, layout, self.to_out_i2v)
        return attn.to_out[1](attn.to_out[0](out))


class IPAdapterCrossAttention(nn.Module):
    """``attn2`` processor: text attention + ``scale`` x attention to the last ``tokens`` context tokens (the image)."""

    def __init__(self, channels: int, context_dim: int, tokens: int = IMAGE_TOKENS, scale: float = 1.0) -> None:
        super().__init__()
        self.tokens, self.scale = tokens, scale
        self.to_k_ip = nn.ModuleList([nn.Linear(context_dim, channels, bias=False)])
        self.to_v_ip = nn.ModuleList([nn.Linear(context_dim, channels, bias=False)])

    def forward(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                attention_mask=None, temb=None, **kwargs: Any) -> torch.Tensor:
        if encoder_hidden_states is None or encoder_hidden_states.shape[1] <= self.tokens:
            raise VividZooError("the IP-Adapter cross-attention needs the text context followed by the image tokens")
        text, image = encoder_hidden_states[:, : -self.tokens], encoder_hidden_states[:, -self.tokens :]
        out = decoupled_cross_attention(attn.to_q(hidden_states), attn.to_k(text), attn.to_v(text),
                                        self.to_k_ip[0](image), self.to_v_ip[0](image), attn.heads, self.scale)
        return attn.to_out[1](attn.to_out[0](out))


class Animate3DUNet(VividZooUNet):
    """Predicts the noise of a multi-view video (layout order) from text context, cameras and CLIP image embeddings."""

    def __init__(self, unet, motion: MotionModuleSet, image_embed_dim: int, ip_scale: float = 1.0) -> None:
        self._ip_scale = ip_scale
        super().__init__(unet, motion)
        context = unet.config.cross_attention_dim
        self.image_projection = ImageProjection(image_embed_dim, context, IMAGE_TOKENS)

    def processor_for(self, name: str, processor: Any) -> Any:
        attention = self.unet.get_submodule(name[: -len(".processor")])
        channels = attention.to_q.out_features
        if name.endswith("attn1.processor"):
            return ReferenceMultiViewAttention(self._slot, channels)
        return IPAdapterCrossAttention(channels, attention.to_k.in_features, scale=self._ip_scale)

    @property
    def ip_scale(self) -> float:
        return self._ip_scale

    @ip_scale.setter
    def ip_scale(self, scale: float) -> None:
        self._ip_scale = scale
        for module in self.unet.modules():
            if isinstance(module, IPAdapterCrossAttention):
                module.scale = scale

    def cross_attention_paths(self) -> list[str]:
        """diffusers paths of the ``attn2`` layers in ``attn_processors`` order (the IP-Adapter's numbering)."""
        return [
            name[: -len(".attn2.processor")] for name in self.unet.attn_processors if name.endswith("attn2.processor")
        ]

    def image_tokens(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """``(batch, width)`` CLIP image embeddings -> ``(batch, 4, context)`` IP-Adapter tokens."""
        return self.image_projection(image_embeds)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float, context: torch.Tensor,
                cameras: torch.Tensor, layout: VideoLayout, image_embeds: torch.Tensor) -> torch.Tensor:
        """``sample`` (k*F*V, 4, h, w) in layout order; ``context`` (same batch, 77, C) text; ``cameras`` (same, 16);
        ``image_embeds`` (same batch, CLIP width): the embedding of each image's view's condition image."""
        tokens = self.image_tokens(image_embeds).to(context.dtype)
        return super().forward(sample, timestep, torch.cat([context, tokens], dim=1), cameras, layout)


def build_animate3d_unet(mvdream: MVDreamCheckpoint, animate3d: Animate3DCheckpoint,
                         ip_adapter: IPAdapterCheckpoint | None = None, clip_vision: ClipVisionCheckpoint | None = None,
                         ip_scale: float = 1.0) -> Animate3DUNet:
    """Animate3D's network. The spatial UNet and the IP-Adapter come from the whole-UNet form of the file when it
    has them (as in the original, whose checkpoint is loaded over the IP-Adapter file; ``ip_adapter`` is then
    not needed and not read), else from the MVDream checkpoint and ``ip_adapter``. Every tensor of the files
    read is used. ``clip_vision``, when given, is checked to give the image embeddings the IP-Adapter reads."""
    if animate3d.image_projection is not None:
        ip_adapter = None
    if animate3d.unet is None:
        if ip_adapter is None:
            raise VividZooError(f"{animate3d.path.name} holds only Animate3D's modules; it also needs the IP-Adapter "
                                f"(ip-adapter_sd15.bin or .safetensors)")
        unet = build_unet(mvdream)
    else:
        from diffusers import UNet2DConditionModel

        with torch.device("meta"):
            unet = UNet2DConditionModel(**unet_config(mvdream.unet_shape))
        load_strict(unet, animate3d.unet, "UNet", animate3d.path)
        unet = unet.eval().requires_grad_(False)
    width = (
        ip_adapter.clip_width if ip_adapter is not None else animate3d.image_projection["image_embeds.weight"].shape[1]
    )
    if clip_vision is not None:
        clip_vision.check_fits(width, (ip_adapter or animate3d).path.name)
    network = Animate3DUNet(unet, animate3d_motion_modules(animate3d), width, ip_scale)

    processors = dict(animate3d.processors)
    projection = animate3d.image_projection
    if ip_adapter is not None:
        paths = network.cross_attention_paths()
        widths = [unet.get_submodule(f"{path}.attn2").to_q.out_features for path in paths]
        ip_adapter.check_fits(unet.config.cross_attention_dim, widths)
        for path, (to_k, to_v) in zip(paths, ip_adapter.layers):
            processors[f"{path}.attn2.processor.to_k_ip.0.weight"] = to_k
            processors[f"{path}.attn2.processor.to_v_ip.0.weight"] = to_v
        projection = ip_adapter.image_projection
    own = {k: v for k, v in network.unet.state_dict().items() if ".processor." in k}
    require_exact(animate3d.path, "attention-processor", set(own), processors, own)
    network.unet.load_state_dict(processors, strict=False)
    load_strict(network.image_projection, projection, "IP-Adapter image projection",
                ip_adapter.path if ip_adapter is not None else animate3d.path)
    return network.eval().requires_grad_(False)


def build_clip_vision(checkpoint: ClipVisionCheckpoint):
    """The image encoder as a transformers ``CLIPVisionModelWithProjection`` (ViT-H/14: gelu, 16 heads)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    shape = checkpoint.shape
    config = CLIPVisionConfig(hidden_size=shape.width, intermediate_size=shape.intermediate,
                              num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                              image_size=shape.image_size, patch_size=shape.patch, projection_dim=shape.projection,
                              hidden_act="gelu", layer_norm_eps=1e-5)
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(config)
    load_strict(model, checkpoint.weights, "CLIP image encoder", checkpoint.path)
    for name, _ in list(model.named_buffers()):
        if name.endswith("position_ids"):
            owner = model.get_submodule(name.rsplit(".", 1)[0])
            owner.register_buffer("position_ids", torch.arange((shape.image_size // shape.patch) ** 2 + 1)[None],
                                  persistent=False)
    return model.eval().requires_grad_(False)

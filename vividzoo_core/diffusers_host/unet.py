"""The Vivid-ZOO network on a diffusers UNet: MVDream UNet + motion modules + alignment layers.

- The MVDream UNet is a ``UNet2DConditionModel`` whose class embedding (``projection``, 16 inputs)
  is MVDream's ``camera_embed``: its output is added to the time embedding.
- Multi-view attention: every ``attn1`` gets :class:`MultiViewSelfAttention`.
- Motion modules run as forward hooks after each attention, or each resnet in blocks without
  attention, and after the mid-block attention: 21 sites for AnimateDiff v2, as AnimateDiff places them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..checkpoints.motion import site_name
from ..checkpoints.mvdream import MVDreamCheckpoint, UNetShape, camera_as_adm
from ..errors import VividZooError
from ..layout import VideoLayout
from ..network.attention import multiview_attention
from ..network.motion_module import MotionModuleSet
from .convert import load_converted


def unet_config(shape: UNetShape) -> dict[str, Any]:
    """diffusers config of an MVDream UNet (diffusers' ``attention_head_dim`` means head count here)."""
    return dict(
        sample_size=32,
        in_channels=shape.in_channels,
        out_channels=shape.out_channels,
        down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in shape.attention_levels],
        up_block_types=["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(shape.attention_levels)],
        block_out_channels=list(shape.block_channels),
        layers_per_block=shape.num_res_blocks,
        transformer_layers_per_block=shape.transformer_depth,
        cross_attention_dim=shape.context_dim,
        attention_head_dim=[shape.heads(c) for c in shape.block_channels],
        use_linear_projection=shape.linear_projection,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=shape.camera_dim,
        norm_num_groups=32,
        flip_sin_to_cos=True,
        freq_shift=0,
    )


def build_unet(checkpoint: MVDreamCheckpoint):
    """The MVDream UNet as a diffusers ``UNet2DConditionModel``, every tensor of the file loaded."""
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import LDM_UNET_KEY, convert_ldm_unet_checkpoint

    def convert(weights: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
        renamed = {LDM_UNET_KEY + camera_as_adm(k): v for k, v in weights.items()}
        return convert_ldm_unet_checkpoint(renamed, config)

    config = unet_config(checkpoint.unet_shape)
    return load_converted(UNet2DConditionModel, config, checkpoint.unet, convert, "UNet", checkpoint.path)


class _LayoutSlot:
    """The layout of the batch being denoised, read by the attention processors and motion hooks.

    It stays set after the forward pass: gradient checkpointing recomputes attention during backward.
    """

    layout: VideoLayout | None = None


class MultiViewSelfAttention:
    """diffusers attention processor for ``attn1``: attends over all views of a frame (MVDream)."""

    def __init__(self, slot: _LayoutSlot) -> None:
        self.slot = slot

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                 temb=None, **kwargs: Any) -> torch.Tensor:
        layout = self.slot.layout or VideoLayout(1, 1)
        q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        out = multiview_attention(q, k, v, attn.heads, layout)
        return attn.to_out[1](attn.to_out[0](out))


def motion_sites(unet) -> dict[str, nn.Module]:
    """The diffusers UNet submodule after which each motion module runs, by motion-module site name."""
    sites: dict[str, nn.Module] = {}
    for kind, blocks in (("down_blocks", unet.down_blocks), ("up_blocks", unet.up_blocks)):
        for i, block in enumerate(blocks):
            hosts = getattr(block, "attentions", None) or block.resnets
            for j, host in enumerate(hosts):
                sites[site_name(f"{kind}.{i}", j)] = host
    sites[site_name("mid_block", 0)] = unet.mid_block.attentions[0]
    return sites


class VividZooUNet(nn.Module):
    """Predicts the noise of a multi-view video batch laid out as :mod:`vividzoo_core.layout` says."""

    def __init__(self, unet, motion: MotionModuleSet | None = None) -> None:
        super().__init__()
        self.unet = unet
        self.motion = motion
        self._slot = _LayoutSlot()
        unet.set_attn_processor({name: self.processor_for(name, processor)
                                 for name, processor in unet.attn_processors.items()})
        if motion is not None:
            hosts = motion_sites(unet)
            for site, module in motion.sites():
                if site not in hosts:
                    raise VividZooError(f"the UNet has no place for motion module {site}; it does not fit this UNet")
                hosts[site].register_forward_hook(self._motion_hook(module))

    def processor_for(self, name: str, processor: Any) -> Any:
        """The attention processor for the layer ``name``: MVDream's multi-view attention on every ``attn1``."""
        return MultiViewSelfAttention(self._slot) if name.endswith("attn1.processor") else processor

    def _motion_hook(self, module: nn.Module):
        def hook(_host: nn.Module, _args: Any, output: Any) -> Any:
            layout = self._slot.layout
            if isinstance(output, tuple):
                return (module(output[0], layout),) + output[1:]
            return module(output, layout)

        return hook

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float, context: torch.Tensor,
                cameras: torch.Tensor, layout: VideoLayout) -> torch.Tensor:
        """``sample`` (k*F*V, 4, h, w), ``context`` (same batch, 77, C), ``cameras`` (same batch, 16)."""
        layout.copies(sample.shape[0])
        if self.motion is not None:
            self.motion.check_frames(layout.frames)
        self._slot.layout = layout
        return self.unet(sample, timestep, encoder_hidden_states=context, class_labels=cameras.to(sample.dtype)).sample

"""The reconstruction family's files: LGM, L4GM and L4GM's interpolation model (multi-view images -> 3D Gaussians).

- LGM (github 3DTopia/LGM, huggingface.co/ashawkey/LGM): ``model_fp16_fixrot.safetensors`` (float16) and
  ``model_fixrot.safetensors`` (float32), the ``big`` configuration of ``core/options.py``. Keys are those of
  ``core/models.py`` ``LGM``: ``unet.*`` (``core/unet.py``) and the last 1x1 ``conv.*``.
- L4GM (github nv-tlabs/L4GM-official, huggingface.co/jiawei011/L4GM): ``recon.safetensors``, the same network
  plus a temporal attention (``t_attns.*``) after every multi-view attention; ``interp.safetensors``, the 4-frame
  interpolation model, which has exactly the same keys and shapes (it is fine-tuned from ``recon`` with
  ``--num_frames 4``, and no parameter depends on the frame count). Nothing in the tensors tells the two apart,
  so the file name does: a name with ``interp`` in it is the interpolation model, any other the reconstruction
  model; an interpolation model is only accepted under a name that says so.

The originals load with ``strict=False``. Here loading is strict: the file must hold exactly the keys and shapes
of :func:`lgm_key_shapes` for the block structure of ``big`` (channel widths may differ, which the tiny test
weights use), nothing missing and nothing unused. The one exception is explicit: ``lpips_loss.*`` (the VGG of the
training loss, which the original ``LGM.state_dict`` drops when saving) is set aside, not used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError
from .animate3d import is_animate3d
from .clip_vision import is_clip_vision
from .files import LoadedFile, read_checkpoint
from .ip_adapter import is_ip_adapter
from .motion import has_motion_modules

LGM, L4GM, L4GM_INTERP = "lgm", "l4gm", "l4gm_interp"
KIND_NAMES = {
    LGM: "LGM (model_fp16_fixrot.safetensors / model_fixrot.safetensors, huggingface.co/ashawkey/LGM)",
    L4GM: "L4GM's reconstruction model (recon.safetensors, huggingface.co/jiawei011/L4GM)",
    L4GM_INTERP: "L4GM's 4-frame interpolation model (interp.safetensors, huggingface.co/jiawei011/L4GM)",
}
TRAINING_ONLY_PREFIX = "lpips_loss."
IN_CHANNELS, GAUSSIAN_CHANNELS = 9, 14
"""RGB + Plücker rays in; per pixel ``pos 3, opacity 1, scale 3, rotation 4, rgb 3`` out."""
TEMPORAL_MARKER = ".t_attns."


@dataclass(frozen=True)
class LGMShape:
    """The UNet of ``core/unet.py``: channels and attention per level, and L4GM's temporal attention."""

    down_channels: tuple[int, ...]
    down_attention: tuple[bool, ...]
    up_channels: tuple[int, ...]
    up_attention: tuple[bool, ...]
    temporal: bool = False
    mid_attention: bool = True
    layers_per_block: int = 2

    def structure(self) -> tuple:
        """What the key layout depends on besides the widths."""
        return (len(self.down_channels), self.down_attention, len(self.up_channels), self.up_attention,
                self.mid_attention, self.layers_per_block)

    @property
    def downsamples(self) -> int:
        return len(self.down_channels) - 1

    @property
    def upsamples(self) -> int:
        return len(self.up_channels) - 1


BIG = LGMShape((64, 128, 256, 512, 1024, 1024), (False, False, False, True, True, True),
               (1024, 1024, 512, 256, 128), (True, True, True, False, False))
"""``config_defaults['big']`` of both repositories (the released weights)."""
TINY = LGMShape((32, 64, 96, 128, 160, 160), BIG.down_attention, (160, 160, 128, 96, 64), BIG.up_attention)
"""Test widths with ``big``'s equalities between levels, so the same shortcut convolutions exist."""


def _resnet(keys: dict, name: str, inp: int, out: int) -> None:
    keys.update({f"{name}.norm1.weight": (inp,), f"{name}.norm1.bias": (inp,),
                 f"{name}.conv1.weight": (out, inp, 3, 3), f"{name}.conv1.bias": (out,),
                 f"{name}.norm2.weight": (out,), f"{name}.norm2.bias": (out,),
                 f"{name}.conv2.weight": (out, out, 3, 3), f"{name}.conv2.bias": (out,)})
    if inp != out:
        keys.update({f"{name}.shortcut.weight": (out, inp, 1, 1), f"{name}.shortcut.bias": (out,)})


def _attention(keys: dict, name: str, channels: int) -> None:
    keys.update({f"{name}.norm.weight": (channels,), f"{name}.norm.bias": (channels,),
                 f"{name}.attn.qkv.weight": (3 * channels, channels),  # qkv_bias=False
                 f"{name}.attn.proj.weight": (channels, channels), f"{name}.attn.proj.bias": (channels,)})


def _attentions(keys: dict, block: str, index: int, channels: int, attention: bool, temporal: bool) -> None:
    if attention:
        _attention(keys, f"{block}.attns.{index}", channels)
        if temporal:
            _attention(keys, f"{block}.t_attns.{index}", channels)


def lgm_key_shapes(shape: LGMShape) -> dict[str, tuple[int, ...]]:
    """Every key of the original ``LGM`` (``state_dict()``, which drops ``lpips_loss.*``) and its shape."""
    keys: dict[str, tuple[int, ...]] = {}
    down, up = shape.down_channels, shape.up_channels
    keys.update({"unet.conv_in.weight": (down[0], IN_CHANNELS, 3, 3), "unet.conv_in.bias": (down[0],)})
    out = down[0]
    for i, channels in enumerate(down):
        inp, out, block = out, channels, f"unet.down_blocks.{i}"
        for j in range(shape.layers_per_block):
            _resnet(keys, f"{block}.nets.{j}", inp if j == 0 else out, out)
            _attentions(keys, block, j, out, shape.down_attention[i], shape.temporal)
        if i != len(down) - 1:
            keys.update({f"{block}.downsample.weight": (out, out, 3, 3), f"{block}.downsample.bias": (out,)})
    _resnet(keys, "unet.mid_block.nets.0", down[-1], down[-1])
    _resnet(keys, "unet.mid_block.nets.1", down[-1], down[-1])
    _attentions(keys, "unet.mid_block", 0, down[-1], shape.mid_attention, shape.temporal)
    out = up[0]
    layers = shape.layers_per_block + 1
    for i, channels in enumerate(up):
        inp, out, block = out, channels, f"unet.up_blocks.{i}"
        skip = down[max(-2 - i, -len(down))]
        for j in range(layers):
            _resnet(keys, f"{block}.nets.{j}", (inp if j == 0 else out) + (skip if j == layers - 1 else out), out)
            _attentions(keys, block, j, out, shape.up_attention[i], shape.temporal)
        if i != len(up) - 1:
            keys.update({f"{block}.upsample.weight": (out, out, 3, 3), f"{block}.upsample.bias": (out,)})
    keys.update({"unet.norm_out.weight": (up[-1],), "unet.norm_out.bias": (up[-1],),
                 "unet.conv_out.weight": (GAUSSIAN_CHANNELS, up[-1], 3, 3), "unet.conv_out.bias": (GAUSSIAN_CHANNELS,),
                 "conv.weight": (GAUSSIAN_CHANNELS, GAUSSIAN_CHANNELS, 1, 1), "conv.bias": (GAUSSIAN_CHANNELS,)})
    return keys


@dataclass
class ReconstructionCheckpoint:
    path: Path
    kind: str
    """``lgm``, ``l4gm`` or ``l4gm_interp``."""
    shape: LGMShape
    tensors: dict[str, torch.Tensor]
    """Exactly the keys of :func:`lgm_key_shapes` (``shape``), in the original's names."""
    set_aside: dict[str, str] = field(default_factory=dict)

    @property
    def parameter_count(self) -> int:
        return sum(t.numel() for t in self.tensors.values())


def is_reconstruction(loaded: LoadedFile) -> bool:
    return "unet.conv_in.weight" in loaded.tensors and "conv.weight" in loaded.tensors


def file_kind(loaded: LoadedFile) -> str:
    """What a file of this family is: by its keys (LGM or L4GM), then by its name (L4GM's two models)."""
    if not any(TEMPORAL_MARKER in key for key in loaded.tensors):
        return LGM
    return L4GM_INTERP if "interp" in loaded.path.name.lower() else L4GM


def load_reconstruction(path: str | Path, kind: str) -> ReconstructionCheckpoint:
    return parse_reconstruction(read_checkpoint(path), kind)


def parse_reconstruction(loaded: LoadedFile, kind: str) -> ReconstructionCheckpoint:
    """The tensors of a file asked for as ``kind``; a :class:`CheckpointError` naming both kinds otherwise."""
    if kind not in KIND_NAMES:
        raise ValueError(f"unknown reconstruction kind {kind!r}; one of {', '.join(KIND_NAMES)}")
    path = loaded.path
    if not is_reconstruction(loaded):
        raise CheckpointError(path, f"{_what_it_is(loaded)}, not {KIND_NAMES[kind]}")
    found = file_kind(loaded)
    if found != kind:
        hint = ""
        if {found, kind} == {L4GM, L4GM_INTERP}:
            hint = ("; both have the same keys and are told apart by the file name (interp.safetensors is the "
                    "interpolation model), so rename the file if its name is wrong")
        raise CheckpointError(path, f"this is {KIND_NAMES[found]}, not {KIND_NAMES[kind]}{hint}")
    set_aside = {key: "training-only LPIPS loss network, not used for inference"
                 for key in loaded.tensors if key.startswith(TRAINING_ONLY_PREFIX)}
    set_aside.update({key: "non-tensor entry; not needed" for key in loaded.extras})
    tensors = {k: t for k, t in loaded.tensors.items() if not k.startswith(TRAINING_ONLY_PREFIX)}
    shape = _shape_of(loaded, kind != LGM)
    expected = lgm_key_shapes(shape)
    missing = [key for key in expected if key not in tensors]
    unused = [key for key in tensors if key not in expected]
    if missing or unused:
        parts = [f"{len(missing)} missing ({', '.join(missing[:3])})" if missing else "",
                 f"{len(unused)} unused ({', '.join(unused[:3])})" if unused else ""]
        raise CheckpointError(path, f"not a complete {KIND_NAMES[kind]}: tensors {' and '.join(p for p in parts if p)}")
    wrong = [f"{key} {tuple(tensors[key].shape)} instead of {want}" for key, want in expected.items()
             if tuple(tensors[key].shape) != want]
    if wrong:
        raise CheckpointError(path, f"tensor shapes do not fit {KIND_NAMES[kind]}: {'; '.join(wrong[:3])}")
    return ReconstructionCheckpoint(path, kind, shape, tensors, set_aside)


def _shape_of(loaded: LoadedFile, temporal: bool) -> LGMShape:
    """The widths of each level, read from the first convolution of its first block; the structure must be big's."""
    tensors = loaded.tensors

    def widths(side: str) -> tuple[tuple[int, ...], tuple[bool, ...]]:
        channels, attention = [], []
        while (conv := tensors.get(f"unet.{side}_blocks.{len(channels)}.nets.0.conv1.weight")) is not None:
            attention.append(f"unet.{side}_blocks.{len(channels)}.attns.0.norm.weight" in tensors)
            channels.append(conv.shape[0])
        return tuple(channels), tuple(attention)

    down, down_attention = widths("down")
    up, up_attention = widths("up")
    shape = LGMShape(down, down_attention, up, up_attention, temporal,
                     mid_attention="unet.mid_block.attns.0.norm.weight" in tensors)
    if shape.structure() != BIG.structure():
        raise CheckpointError(
            loaded.path, f"a UNet with {len(down)} down / {len(up)} up levels (attention {down_attention} / "
                         f"{up_attention}) is not LGM's 'big' configuration (the released weights): "
                         f"{len(BIG.down_channels)} / {len(BIG.up_channels)} levels")
    return shape


def _what_it_is(loaded: LoadedFile) -> str:
    keys = list(loaded.tensors)
    if is_animate3d(loaded):
        return "this is Animate3D's trained model"
    if loaded.metadata.get("format") == "vividzoo-alignment" or any(".align_3d_to_2d." in k for k in keys):
        return "this is a Vivid-ZOO alignment file"
    if has_motion_modules(loaded.tensors) or any(".motion_modules." in k for k in keys):
        return "this is an AnimateDiff motion module"
    if any(k.startswith(("model.diffusion_model.", "input_blocks.", "first_stage_model.")) for k in keys):
        return "this is a Stable Diffusion / MVDream checkpoint"
    if is_ip_adapter(loaded):
        return "this is an IP-Adapter"
    if is_clip_vision(loaded):
        return "this is a CLIP image encoder"
    return "no LGM / L4GM weights found (unet.conv_in.weight and conv.weight)"

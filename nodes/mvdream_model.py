"""MVDream checkpoints as ComfyUI's own MODEL, CLIP and VAE.

The file is read and checked by ``vividzoo_core`` (clear errors, every tensor accounted for). The
UNet is ComfyUI's ``UNetModel`` with MVDream's camera MLP as its ADM embedding (``label_emb``, 16
inputs, ``num_classes="sequential"``): the camera then enters as ``y``. No built-in model config
matches that, hence the small config classes below; CLIP and VAE are ComfyUI's classes, with their
sizes read from the weights.
"""

from __future__ import annotations

import json
import os

import comfy.model_base
import comfy.model_detection
import comfy.model_management as mm
import comfy.model_patcher
import comfy.sd
import comfy.sd1_clip
import comfy.supported_models
import comfy.supported_models_base
import comfy.text_encoders.sd2_clip
import comfy.utils
import folder_paths
import torch

from ..vividzoo_core.checkpoints import SD15, MVDreamCheckpoint, load_mvdream
from ..vividzoo_core.checkpoints.mvdream import (
    CAMERA_INPUTS,
    UNET_PREFIX,
    TextEncoderShape,
    VaeShape,
    camera_as_adm,
)
from ..vividzoo_core.errors import CheckpointError
from .comfy_internals import dynamic_option, reloadable


class MVDreamSD15(comfy.supported_models.SD15):
    """SD 1.5 UNet whose ADM input ``y`` is MVDream's 16-number camera."""

    unet_config = {**comfy.supported_models.SD15.unet_config, "adm_in_channels": CAMERA_INPUTS}


class MVDreamSD21(comfy.supported_models.SD20):
    """SD 2.1-base UNet whose ADM input ``y`` is MVDream's 16-number camera."""

    unet_config = {**comfy.supported_models.SD20.unet_config, "adm_in_channels": CAMERA_INPUTS}

    def model_type(self, state_dict, prefix=""):
        return comfy.model_base.ModelType.EPS  # MVDream v2.1 predicts noise; SD20 guesses from weights


def is_mvdream_model(model) -> bool:
    """True for a MODEL from the Vivid-ZOO checkpoint loader (camera-conditioned UNet)."""
    return isinstance(getattr(model.model, "model_config", None), (MVDreamSD15, MVDreamSD21))


def load_mvdream_model(path: str, with_clip: bool = True, with_vae: bool = True, disable_dynamic: bool = False):
    """``(ModelPatcher, CLIP | None, VAE | None, MVDreamCheckpoint)`` from an MVDream file; each patcher can be
    loaded afresh (:func:`reload_mvdream_patcher`), as newer cores' multi-GPU cloning needs. ``disable_dynamic``:
    no dynamic-VRAM patcher for the CLIP and VAE (the MODEL's never is one)."""
    checkpoint = load_mvdream(path)
    unet_weights = {UNET_PREFIX + camera_as_adm(k): v for k, v in checkpoint.unet.items()}
    config_class = MVDreamSD15 if checkpoint.family == SD15 else MVDreamSD21
    model_config = config_class(comfy.model_detection.detect_unet_config(unet_weights, UNET_PREFIX))
    model_config.unet_shape = checkpoint.unet_shape

    parameters = comfy.utils.calculate_parameters(unet_weights, UNET_PREFIX)
    load_device = mm.get_torch_device()
    unet_dtype = mm.unet_dtype(model_params=parameters, supported_dtypes=model_config.supported_inference_dtypes,
                               weight_dtype=comfy.utils.weight_dtype(unet_weights, UNET_PREFIX))
    model_config.set_inference_dtype(
        unet_dtype, mm.unet_manual_cast(unet_dtype, load_device, model_config.supported_inference_dtypes)
    )
    initial_device = mm.unet_inital_load_device(parameters, unet_dtype)
    model = model_config.get_model(unet_weights, UNET_PREFIX, device=initial_device)
    expected = {UNET_PREFIX + k for k in model.diffusion_model.state_dict()}
    if expected != set(unet_weights):
        raise CheckpointError(
            path, f"the UNet weights do not fit ComfyUI's UNet (missing {sorted(expected - set(unet_weights))[:3]}, "
                  f"unexpected {sorted(set(unet_weights) - expected)[:3]})"
        )
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=mm.unet_offload_device())
    model.load_model_weights(unet_weights, UNET_PREFIX)

    reloadable(patcher, reload_mvdream_patcher, (path, MODEL_PART))
    vae = _vae(checkpoint.vae, checkpoint.vae_shape, disable_dynamic) if with_vae and checkpoint.vae else None
    clip = _clip(checkpoint, model_config, disable_dynamic) if with_clip and checkpoint.text_encoder else None
    for part, loaded in ((CLIP_PART, clip), (VAE_PART, vae)):
        if loaded is not None:
            reloadable(loaded.patcher, reload_mvdream_patcher, (path, part))
    if initial_device != torch.device("cpu"):
        mm.load_models_gpu([patcher], force_full_load=True)
    return patcher, clip, vae, checkpoint


MODEL_PART, CLIP_PART, VAE_PART = 0, 1, 2
"""Items of :func:`load_mvdream_model`'s result."""


def reload_mvdream_patcher(path: str, part: int, disable_dynamic: bool = False):
    """A fresh patcher of the MODEL, CLIP or VAE (``part``) of an MVDream file (the ``cached_patcher_init`` factory;
    the UNet is read in every case, as the file's kind is checked from it)."""
    loaded = load_mvdream_model(path, with_clip=part == CLIP_PART, with_vae=part == VAE_PART,
                                disable_dynamic=disable_dynamic)[part]
    return loaded if part == MODEL_PART else loaded.patcher


def _vae(weights: dict[str, torch.Tensor], shape: VaeShape, disable_dynamic: bool) -> comfy.sd.VAE:
    ddconfig = {
        "double_z": True, "z_channels": shape.latent_channels, "resolution": 256, "in_channels": 3, "out_ch": 3,
        "ch": shape.channels, "ch_mult": list(shape.channel_mult), "num_res_blocks": shape.num_res_blocks,
        "attn_resolutions": [], "dropout": 0.0,
    }
    return comfy.sd.VAE(sd=dict(weights), config={"params": {"ddconfig": ddconfig, "embed_dim": shape.latent_channels}},
                        **dynamic_option(comfy.sd.VAE, disable_dynamic))


def _text_config(shape: TextEncoderShape) -> dict:
    """ComfyUI's CLIP config for this family, with the sizes read from the weights."""
    if shape.kind == "clip":
        base = os.path.join(os.path.dirname(comfy.sd1_clip.__file__), "sd1_clip_config.json")
    else:
        base = os.path.join(os.path.dirname(comfy.text_encoders.sd2_clip.__file__), "sd2_clip_config.json")
    with open(base) as handle:
        config = json.load(handle)
    config.update(hidden_size=shape.width, intermediate_size=shape.intermediate, projection_dim=shape.width,
                  num_hidden_layers=shape.layers_used, num_attention_heads=shape.heads,
                  max_position_embeddings=shape.max_positions, vocab_size=shape.vocab_size)
    return config


def _clip(checkpoint: MVDreamCheckpoint, model_config, disable_dynamic: bool) -> comfy.sd.CLIP:
    """The text encoder, last used layer taken as is (v2.1: the penultimate OpenCLIP layer, already cut)."""
    shape = checkpoint.text_shape
    if shape.kind == "clip":
        weights = {"cond_stage_model.transformer." + k: v for k, v in checkpoint.text_encoder.items()}
        target = comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
        special_tokens = {"start": 49406, "end": 49407, "pad": 49407}
        name = "l"
    else:
        weights = {"cond_stage_model.model." + k: v for k, v in checkpoint.text_encoder.items()}
        target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.sd2_clip.SD2Tokenizer,
                                                        comfy.sd1_clip.SD1ClipModel)
        special_tokens = {"start": 49406, "end": 49407, "pad": 0}
        name = "h"
    target.params = {
        "clip_name": name,
        "clip_model": comfy.sd1_clip.SDClipModel,
        "textmodel_json_config": _text_config(shape),
        "special_tokens": special_tokens,
        "return_projected_pooled": False,
    }
    state = model_config.process_clip_state_dict(weights)
    return comfy.sd.CLIP(target, embedding_directory=folder_paths.get_folder_paths("embeddings"), tokenizer_data=state,
                         parameters=comfy.utils.calculate_parameters(state), state_dict=state,
                         **dynamic_option(comfy.sd.CLIP, disable_dynamic))

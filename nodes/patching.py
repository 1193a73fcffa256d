"""Vivid-ZOO on a ComfyUI MODEL, through ComfyUI's public patch hooks only.

On a clone of the MODEL:
- multi-view attention: an ``attn1`` replace on every transformer block;
- cameras: a DIFFUSION_MODEL wrapper feeds them to the UNet as ``y`` (MVDream's camera MLP is the
  ADM embedding), for whatever slice of the video the call holds;
- motion modules: injected after each attention (or res block) at AnimateDiff's 21 places, run
  through a ``forward_timestep_embed_patch``, and loaded/offloaded with the UNet as an additional
  model; trained alignment is applied as weight patches (like a LoRA) that add it into the
  ``proj_in`` / ``proj_out`` it runs beside (the same result, at no run-time cost), so one loaded
  motion module serves aligned and training-free MODELs side by side, in any VRAM mode;
- an OUTER_SAMPLE wrapper checks the latent against views, cameras, the motion module's frame
  limit and the free memory before the first step, and records the frame count for the run;
- the paper's beta schedule as a ``model_sampling`` object patch.
The stock KSampler, KSamplerAdvanced, SamplerCustom and LoRA loaders therefore work on the result.

Animate3D (``animate3d_model.py``) is built on the same pieces (:func:`patch_video_model`) with its own
self-attention, motion modules and cameras, plus hooks of its own under :data:`ANIMATE3D_KEY`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass

import comfy.model_sampling
import comfy.patcher_extension
import torch
from comfy.ldm.modules.attention import SpatialTransformer, optimized_attention
from comfy.ldm.modules.diffusionmodules.openaimodel import ResBlock

from ..vividzoo_core.cameras import CameraRig
from ..vividzoo_core.checkpoints.motion import split_site
from ..vividzoo_core.compat import check_pairing
from ..vividzoo_core.context_windows import frame_windows, window_weights
from ..vividzoo_core.errors import VividZooError
from ..vividzoo_core.layout import VideoLayout
from ..vividzoo_core.memory import check_fits
from ..vividzoo_core.network.attention import multiview_attention
from ..vividzoo_core.network.motion_module import (
    MotionModule,
    alignment_as_projection_deltas,
)
from ..vividzoo_core.schedules import BETA_END, BETA_START, check_beta_schedule
from .comfy_internals import (
    additional_patcher,
    context_handler,
    context_window_handler,
    free_memory,
    set_context_handler,
    window_anchor,
)
from .mvdream_model import is_mvdream_model
from .types import LoadedAlignment, LoadedMotionModule

KEY = "vividzoo"
LAYOUT_KEY = "vividzoo_layout"
ANIMATE3D_KEY = "vividzoo_animate3d"
FREE_INIT_KEY = "vividzoo_free_init"
PACK_KEYS = (KEY, ANIMATE3D_KEY, FREE_INIT_KEY)
"""Every key the pack patches a MODEL under; a new patch starts by removing them all (see :func:`patch_video_model`)."""
# ComfyUI's names for our schedules (its "linear" is linear in sqrt(beta), diffusers' scaled_linear).
COMFY_BETA_SCHEDULES = {"linear": "sqrt_linear", "scaled_linear": "linear"}
NOT_MVDREAM = (
    "this MODEL has no camera input: connect the MODEL output of 'Vivid-ZOO MVDream Checkpoint Loader' "
    "(an MVDream multi-view checkpoint such as sd-v1.5-4view.pt), not a plain Stable Diffusion model"
)


@dataclass(frozen=True)
class VideoSettings:
    """What the patched MODEL knows about the video; lives in ``transformer_options[KEY]``."""

    cameras: CameraRig
    max_frames: int | None = None
    """The motion module's limit; None without motion modules."""
    frames: int | None = None
    """Frames of the video being sampled, set per run by the outer-sample wrapper."""
    model: str = "vividzoo"
    """The model family, for the memory estimate (``vividzoo_core.memory``)."""

    @property
    def views(self) -> int:
        return self.cameras.views

    def frames_for_batch(self, batch: int) -> int:
        if batch % self.views:
            raise VividZooError(
                f"the latent holds {batch} images, not a whole number of frames of {self.views} views; "
                f"use 'Empty Multi-View Video Latent' with views={self.views} (batch = views x frames)"
            )
        return batch // self.views


def patch_vividzoo(model, cameras: CameraRig, motion: LoadedMotionModule | None = None,
                   alignment: LoadedAlignment | None = None, beta_schedule: str | None = None):
    """A clone of an MVDream ``model`` set up for multi-view video (or multi-view images without ``motion``)."""
    if not is_mvdream_model(model):
        raise VividZooError(NOT_MVDREAM)
    motion_patcher = None
    if motion is not None:
        checkpoint = alignment.checkpoint if alignment else None
        for notice in check_pairing(model.model.model_config.unet_shape, motion, checkpoint):
            logging.warning("Vivid-ZOO: %s", notice)
        motion_patcher = _aligned_motion_patcher(motion, checkpoint)
    settings = VideoSettings(cameras, motion.max_frames if motion else None)
    return patch_video_model(model, settings, motion_patcher, _multiview_self_attention, beta_schedule)


def patch_video_model(model, settings: VideoSettings, motion_patcher=None, self_attention=None,
                      beta_schedule: str | None = None):
    """A clone of an MVDream ``model`` with what every multi-view (video) model of the pack has: ``settings`` in the
    transformer options, ``self_attention`` as the ``attn1`` replace of every transformer block, the motion modules
    of ``motion_patcher`` (a ModelPatcher around a ``MotionModuleSet``) injected, the run check and the cameras
    wrappers, and the beta schedule. Whatever the pack patched before is removed first, so patches never stack."""
    if not is_mvdream_model(model):
        raise VividZooError(NOT_MVDREAM)
    patched = model.clone()
    _remove_pack_patches(patched)
    if motion_patcher is not None:
        _add_motion_modules(patched, motion_patcher)
    patched.model_options["transformer_options"][KEY] = settings
    for key in attention_sites(patched.model.diffusion_model):
        patched.set_model_attn1_replace(self_attention, *key)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, KEY, _check_and_record_run)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, KEY, _with_layout_and_cameras)
    if beta_schedule is not None:
        patched.add_object_patch("model_sampling", beta_schedule_sampling(beta_schedule))
    return patched


PACK_HOOKS: set = set()
"""Hook functions the pack installs in ``transformer_options`` patch lists (``attn1_patch``, ``attn2`` replaces):
removed by :func:`_remove_pack_patches`; the ``attn1`` replaces are overwritten at every site anyway."""


def pack_hook(function):
    """Marks a hook function of the pack (a decorator)."""
    PACK_HOOKS.add(function)
    return function


def _remove_pack_patches(patched) -> None:
    for key in PACK_KEYS:
        patched.remove_injections(key)
        patched.remove_additional_models(key)
        patched.remove_attachments(key)
        for wrapper_type in list(patched.wrappers):
            patched.remove_wrappers_with_key(wrapper_type, key)
    options = patched.model_options["transformer_options"]
    for key in PACK_KEYS:
        options.pop(key, None)
    for patches in options.get("patches", {}).values():
        patches[:] = [patch for patch in patches if not _is_pack_hook(patch)]
    for replaces in options.get("patches_replace", {}).values():
        for site in [site for site, function in replaces.items() if _is_pack_hook(function)]:
            del replaces[site]


def _is_pack_hook(patch) -> bool:
    """By identity: other packs' patch objects need not be hashable or comparable."""
    if isinstance(patch, tuple) and len(patch) == 2:  # a forward_timestep_embed_patch (class, handler)
        patch = patch[1]
    return any(patch is hook for hook in PACK_HOOKS)


def beta_schedule_sampling(schedule: str):
    """ComfyUI ``model_sampling`` for one of our named schedules (epsilon prediction)."""
    check_beta_schedule(schedule)

    class EpsDiscrete(comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS):
        pass

    settings = {"beta_schedule": COMFY_BETA_SCHEDULES[schedule], "linear_start": BETA_START, "linear_end": BETA_END}
    return EpsDiscrete(_SamplingConfig(settings))


@dataclass
class _SamplingConfig:
    sampling_settings: dict


def add_context_windows(model, views: int, window_frames: int, overlap_frames: int):
    """Sliding windows of whole frames (all views together) through ComfyUI's context-window handler."""
    overlap = min(overlap_frames, window_frames - 1)
    handler = context_window_handler(_frame_window_schedule, functools.partial(_frame_window_weights, views),
                                     window_frames * views, overlap * views)
    set_context_handler(model, handler)
    return model


def check_memory(model, latent: torch.Tensor, frames: int) -> None:
    """Refuses a video whose activations cannot fit in the free memory ComfyUI reports, before sampling.

    The weights are left out: ComfyUI loads and offloads them itself.
    """
    settings: VideoSettings = model.model_options["transformer_options"][KEY]
    handler = context_handler(model.model_options)
    frames_at_once = min(frames, handler.context_length // settings.views) if handler is not None else frames
    device = model.load_device
    dtype = model.model.manual_cast_dtype or model.model.get_dtype()
    check_fits(settings.views, frames_at_once, latent.shape[-1] * 8, latent.shape[-2] * 8, dtype.itemsize,
               free_memory(device), where=f"on {device}", model=settings.model)


def check_video(model_options: dict, latent_batch: int) -> int:
    """Checks a latent batch against a patched MODEL's options before sampling; returns the frame count."""
    settings: VideoSettings = model_options["transformer_options"][KEY]
    frames = settings.frames_for_batch(latent_batch)
    settings.cameras.for_layout(VideoLayout(settings.views, frames))
    handler = context_handler(model_options)
    window = handler.context_length // settings.views if handler is not None else frames
    if settings.max_frames is not None and min(frames, window) > settings.max_frames:
        if handler is None:
            raise VividZooError(
                f"{frames} frames is more than the motion module sees at once (at most {settings.max_frames}). "
                f"Use 'Vivid-ZOO Sampler' with context_frames at most {settings.max_frames} (sliding windows "
                f"over time), or make at most {settings.max_frames} frames"
            )
        raise VividZooError(
            f"context windows of {window} frames are longer than the motion module's limit of "
            f"{settings.max_frames}; set context_frames to at most {settings.max_frames}"
        )
    return frames


# -- hooks (plain functions: ComfyUI deep-copies model options on every clone) --------------------

def _check_and_record_run(executor, noise, latent_image, *args, **kwargs):
    # The guider's options are a per-run copy (CFGGuider.sample), so recording here leaks nowhere.
    model_options = executor.class_obj.model_options
    frames = check_video(model_options, noise.shape[0])
    check_memory(executor.class_obj.model_patcher, noise, frames)
    options = model_options["transformer_options"]
    options[KEY] = dataclasses.replace(options[KEY], frames=frames)
    return executor(noise, latent_image, *args, **kwargs)


def _with_layout_and_cameras(executor, x, timesteps, context, y, control, transformer_options, **kwargs):
    settings: VideoSettings = transformer_options[KEY]
    frames = _frames_in_call(transformer_options, settings, x.shape[0])
    layout = VideoLayout(settings.views, len(frames))
    copies = layout.copies(x.shape[0])
    video = VideoLayout(settings.views, settings.frames or max(frames) + 1)
    cameras = settings.cameras.for_layout(video).embedding_input()[video.batch_indices(frames, 1)]
    y = cameras.repeat(copies, 1).to(device=x.device, dtype=x.dtype)
    return executor(x, timesteps, context, y, control, {**transformer_options, LAYOUT_KEY: layout}, **kwargs)


def _frames_in_call(transformer_options: dict, settings: VideoSettings, batch: int) -> list[int]:
    window = transformer_options.get("context_window")
    views = settings.views
    if window is not None:
        if window_anchor(window) is not None:
            raise VividZooError(
                "these context windows add the latent before each window (causal_window_fix of ComfyUI's context "
                "windows), which splits the views of a frame; use the context options of 'Vivid-ZOO Sampler', or "
                "turn causal_window_fix off"
            )
        indices = list(window.index_list)
        frames = sorted({i // views for i in indices})
        if len(indices) != len(frames) * views:
            raise VividZooError(
                "these context windows cut through the views of a frame; use the context options of "
                "'Vivid-ZOO Sampler', which keep all views of a frame together"
            )
        return frames
    if settings.frames is not None:
        return list(range(settings.frames))
    copies = len(transformer_options.get("cond_or_uncond", [0]))
    return list(range(batch // (copies * views)))


def _multiview_self_attention(q, k, v, extra_options):
    attention = functools.partial(comfy_attention, precision=extra_options.get("attn_precision"))
    return multiview_attention(q, k, v, extra_options["n_heads"], extra_options[LAYOUT_KEY], attention)


def comfy_attention(q, k, v, heads, precision=None):
    """ComfyUI's selected attention kernel (for the motion modules and the attention replaces)."""
    return optimized_attention(q, k, v, heads, attn_precision=precision)


@pack_hook
def _run_motion_module(layer, x, emb, context, transformer_options, *args, **kwargs):
    return layer(x, transformer_options[LAYOUT_KEY])


def _frame_window_schedule(length: int, handler, model_options: dict) -> list[list[int]]:
    views = model_options["transformer_options"][KEY].views
    windows = frame_windows(length // views, handler.context_length // views, handler.context_overlap // views)
    return [[f * views + v for f in window for v in range(views)] for window in windows]


def _frame_window_weights(views: int, length: int, **kwargs) -> list[float]:
    return window_weights(length // views).repeat_interleave(views).tolist()


# -- motion modules --------------------------------------------------------------------------------

def _aligned_motion_patcher(motion: LoadedMotionModule, alignment):
    """A clone of the motion modules' patcher with the trained alignment as weight patches (none: training-free)."""
    motion_patcher = motion.patcher.clone()
    if alignment is not None:
        deltas = alignment_as_projection_deltas(alignment.weights)
        motion_patcher.add_patches({key: (delta,) for key, delta in deltas.items()}, 1.0)
    return motion_patcher


def _add_motion_modules(patched, motion_patcher) -> None:
    patched.set_additional_models(KEY, [motion_patcher])
    patched.set_injections(KEY, [comfy.patcher_extension.PatcherInjection(_inject, _eject)])
    patched.set_model_forward_timestep_embed_patch((MotionModule, _run_motion_module))


def _inject(patcher) -> None:
    motion_patcher = additional_patcher(patcher, KEY)
    unet = patcher.model.diffusion_model
    _remove_motion_modules(unet)
    for site, module in motion_patcher.model.sites():
        block = _host_block(unet, site)
        block.insert(_insert_position(block, site), module)


def _eject(patcher) -> None:
    _remove_motion_modules(patcher.model.diffusion_model)


def _remove_motion_modules(unet) -> None:
    for block in [*unet.input_blocks, unet.middle_block, *unet.output_blocks]:
        for index in reversed(range(len(block))):
            if isinstance(block[index], MotionModule):
                del block[index]


def ldm_block(kind: str, level: int | None, index: int) -> tuple[str, int]:
    """A diffusers block (the ``index``-th module of ``down_blocks`` / ``up_blocks`` ``level``, or ``mid_block``) as
    ComfyUI names its LDM block: down i/j -> ``("input", 3i+j+1)``, up i/j -> ``("output", 3i+j)``, mid ->
    ``("middle", 0)``: the block names of attention-patch keys."""
    if kind == "mid_block":
        return "middle", 0
    position = 3 * level + index
    return ("input", position + 1) if kind == "down_blocks" else ("output", position)


def unet_block(unet, name: str, number: int):
    """ComfyUI's UNet block ``("input" | "middle" | "output", number)``."""
    if name == "middle":
        return unet.middle_block
    return {"input": unet.input_blocks, "output": unet.output_blocks}[name][number]


def _host_block(unet, site: str):
    """The LDM block of a motion-module site (see :func:`ldm_block`)."""
    return unet_block(unet, *ldm_block(*split_site(site)))


def _insert_position(block, site: str) -> int:
    """After the block's attention, or its res block where it has none; before any up/downsampler."""
    if site.startswith("mid_block"):
        return 2
    hosts = [i for i, layer in enumerate(block) if isinstance(layer, (ResBlock, SpatialTransformer))]
    return hosts[-1] + 1


def attention_sites(unet) -> list[tuple[str, int, int]]:
    """``(block name, block number, transformer index)`` of every transformer block (attn1 replace keys)."""
    sites = []
    named = [("input", i, b) for i, b in enumerate(unet.input_blocks)] + [("middle", 0, unet.middle_block)]
    named += [("output", i, b) for i, b in enumerate(unet.output_blocks)]
    for name, number, block in named:
        for layer in block:
            if isinstance(layer, SpatialTransformer):
                sites += [(name, number, index) for index in range(len(layer.transformer_blocks))]
    return sites

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
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass

import comfy.context_windows
import comfy.model_management as mm
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
from ..vividzoo_core.network.motion_module import MotionModule, alignment_as_projection_deltas
from ..vividzoo_core.schedules import BETA_END, BETA_START, check_beta_schedule
from .mvdream_model import is_mvdream_model
from .types import LoadedAlignment, LoadedMotionModule

KEY = "vividzoo"
LAYOUT_KEY = "vividzoo_layout"
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
    patched = model.clone()
    if motion is not None:
        checkpoint = alignment.checkpoint if alignment else None
        for notice in check_pairing(model.model.model_config.unet_shape, motion, checkpoint):
            logging.warning("Vivid-ZOO: %s", notice)
        _add_motion_modules(patched, motion, checkpoint)
    else:
        patched.remove_injections(KEY)
        patched.remove_additional_models(KEY)
        patched.remove_attachments(KEY)
    patched.model_options["transformer_options"][KEY] = VideoSettings(cameras, motion.max_frames if motion else None)
    for key in _attention_sites(patched.model.diffusion_model):
        patched.set_model_attn1_replace(_multiview_self_attention, *key)
    for wrapper_type, wrapper in ((comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, _check_and_record_run),
                                  (comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, _with_layout_and_cameras)):
        patched.remove_wrappers_with_key(wrapper_type, KEY)
        patched.add_wrapper_with_key(wrapper_type, KEY, wrapper)
    if beta_schedule is not None:
        patched.add_object_patch("model_sampling", beta_schedule_sampling(beta_schedule))
    return patched


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
    handler = comfy.context_windows.IndexListContextHandler(
        comfy.context_windows.ContextSchedule("vividzoo_frames", _frame_window_schedule),
        comfy.context_windows.ContextFuseMethod("vividzoo_pyramid", functools.partial(_frame_window_weights, views)),
        context_length=window_frames * views,
        context_overlap=overlap * views,
        dim=0,
    )
    model.model_options["context_handler"] = handler
    comfy.context_windows.create_prepare_sampling_wrapper(model)
    return model


def check_memory(model, latent: torch.Tensor, frames: int) -> None:
    """Refuses a video whose activations cannot fit in the free memory ComfyUI reports, before sampling.

    The weights are left out: ComfyUI loads and offloads them itself.
    """
    settings: VideoSettings = model.model_options["transformer_options"][KEY]
    handler = model.model_options.get("context_handler")
    frames_at_once = min(frames, handler.context_length // settings.views) if handler is not None else frames
    device = model.load_device
    dtype = model.model.manual_cast_dtype or model.model.get_dtype()
    check_fits(settings.views, frames_at_once, latent.shape[-1] * 8, latent.shape[-2] * 8, dtype.itemsize,
               mm.get_free_memory(device), where=f"on {device}")


def check_video(model_options: dict, latent_batch: int) -> int:
    """Checks a latent batch against a patched MODEL's options before sampling; returns the frame count."""
    settings: VideoSettings = model_options["transformer_options"][KEY]
    frames = settings.frames_for_batch(latent_batch)
    settings.cameras.for_layout(VideoLayout(settings.views, frames))
    handler = model_options.get("context_handler")
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
    attention = functools.partial(_comfy_attention, precision=extra_options.get("attn_precision"))
    return multiview_attention(q, k, v, extra_options["n_heads"], extra_options[LAYOUT_KEY], attention)


def _comfy_attention(q, k, v, heads, precision=None):
    return optimized_attention(q, k, v, heads, attn_precision=precision)


def comfy_attention(q, k, v, heads):
    """ComfyUI's selected attention kernel, for the motion modules."""
    return optimized_attention(q, k, v, heads)


def _run_motion_module(layer, x, emb, context, transformer_options, *args, **kwargs):
    return layer(x, transformer_options[LAYOUT_KEY])


def _frame_window_schedule(length: int, handler, model_options: dict) -> list[list[int]]:
    views = model_options["transformer_options"][KEY].views
    windows = frame_windows(length // views, handler.context_length // views, handler.context_overlap // views)
    return [[f * views + v for f in window for v in range(views)] for window in windows]


def _frame_window_weights(views: int, length: int, **kwargs) -> list[float]:
    return window_weights(length // views).repeat_interleave(views).tolist()


# -- motion modules --------------------------------------------------------------------------------

def _add_motion_modules(patched, motion: LoadedMotionModule, alignment) -> None:
    motion_patcher = motion.patcher.clone()
    if alignment is not None:
        deltas = alignment_as_projection_deltas(alignment.weights)
        motion_patcher.add_patches({key: (delta,) for key, delta in deltas.items()}, 1.0)
    patched.set_additional_models(KEY, [motion_patcher])
    patched.set_attachments(KEY, motion_patcher)
    patched.set_injections(KEY, [comfy.patcher_extension.PatcherInjection(_inject, _eject)])
    patches = patched.model_options["transformer_options"].get("patches", {}).get("forward_timestep_embed_patch", [])
    if not any(handler is _run_motion_module for _, handler in patches):
        patched.set_model_forward_timestep_embed_patch((MotionModule, _run_motion_module))


def _inject(patcher) -> None:
    motion_patcher = patcher.get_attachment(KEY)
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


def _host_block(unet, site: str):
    """The LDM block of a motion-module site: down i/j -> input_blocks[3i+j+1], up i/j -> output_blocks[3i+j]."""
    kind, level, index = split_site(site)
    if kind == "mid_block":
        return unet.middle_block
    position = 3 * level + index
    return unet.input_blocks[position + 1] if kind == "down_blocks" else unet.output_blocks[position]


def _insert_position(block, site: str) -> int:
    """After the block's attention, or its res block where it has none; before any up/downsampler."""
    if site.startswith("mid_block"):
        return 2
    hosts = [i for i, layer in enumerate(block) if isinstance(layer, (ResBlock, SpatialTransformer))]
    return hosts[-1] + 1


def _attention_sites(unet) -> list[tuple[str, int, int]]:
    """``(block name, block number, transformer index)`` of every transformer block (attn1 replace keys)."""
    sites = []
    named = [("input", i, b) for i, b in enumerate(unet.input_blocks)] + [("middle", 0, unet.middle_block)]
    named += [("output", i, b) for i, b in enumerate(unet.output_blocks)]
    for name, number, block in named:
        for layer in block:
            if isinstance(layer, SpatialTransformer):
                sites += [(name, number, index) for index in range(len(layer.transformer_blocks))]
    return sites

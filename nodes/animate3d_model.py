"""Animate3D (MV-VDM) on a ComfyUI MODEL, through ComfyUI's public patch hooks only.

Built on the MVDream MODEL of the pack's checkpoint loader with :func:`patching.patch_video_model` (the
pieces Vivid-ZOO uses: motion modules injected as an additional model, cameras as ``y``, the run check,
the beta schedule), plus, under :data:`patching.ANIMATE3D_KEY`:

- ``attn1`` replace on every transformer block: MVDream's multi-view attention plus the reference attention to
  frame 0. ComfyUI hands the replace ``q, k, v`` only; the reference attention's own query projection
  (``to_q_i2v``) reads the block's normalised input, which an ``attn1_patch`` keeps for it.
- ``attn2`` replace on every transformer block: the IP-Adapter's decoupled cross-attention with the image tokens of
  each image's condition view (view v of every frame gets view v's tokens); negative branches get the tokens of a
  zero embedding, as the original does.
- The trained weights of both (``to_q_i2v``, ``to_out_i2v``, ``to_k_ip``, ``to_v_ip``) are an additional model, loaded
  and offloaded with the UNet like the motion modules.
- The clean condition latents are frame 0 of every view at every model call: a DIFFUSION_MODEL wrapper puts them in
  the UNet's input (the original puts them back after each step, the UNet seeing them with the current timestep),
  and an APPLY_MODEL wrapper makes them frame 0 of the denoised output, so every sampler keeps frame 0 on them and
  ends there.
- Cameras: Animate3D's condition views (:func:`condition_cameras`); beta schedule: linear (diffusers' name).

FreeInit is an OUTER_SAMPLE wrapper (:func:`add_free_init`) for any video MODEL of the pack.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import comfy.patcher_extension
import comfy.utils
import torch

from ..vividzoo_core.animate3d_pipeline import (
    BETA_SCHEDULE,
    condition_cameras,
    layout_to_video,
    video_to_layout,
)
from ..vividzoo_core.errors import CheckpointError, VividZooError
from ..vividzoo_core.freeinit import butterworth_low_pass, reinitialise_at
from ..vividzoo_core.layout import VideoLayout
from ..vividzoo_core.network.animate3d import (
    Animate3DAttentionLayers,
    ImageProjection,
    TrainedAttention,
    decoupled_cross_attention,
    reference_multiview_attention,
)
from .comfy_internals import additional_patcher, stop_if_cancelled
from .patching import (
    ANIMATE3D_KEY,
    FREE_INIT_KEY,
    KEY,
    LAYOUT_KEY,
    VideoSettings,
    attention_sites,
    check_video,
    comfy_attention,
    pack_hook,
    patch_video_model,
    unet_block,
)

CALL_KEY = "vividzoo_animate3d_call"
BLOCK_INPUT_KEY = "vividzoo_animate3d_block_input"
NOT_A_VIDEO_MODEL = (
    "this MODEL is not a Vivid-ZOO or Animate3D video model: connect the MODEL output of 'Animate3D Condition' "
    "(or of 'Apply Vivid-ZOO')"
)


@dataclass(frozen=True)
class Animate3DConditions:
    """What the condition views give the MODEL; lives in ``transformer_options[ANIMATE3D_KEY]``."""

    first_latents: torch.Tensor
    """``(4, C, h, w)`` the views' latents in the model's latent space (``process_latent_in``): frame 0."""
    image_tokens: torch.Tensor
    """``(4, tokens, context)`` each view's IP-Adapter tokens."""
    empty_tokens: torch.Tensor
    """``(tokens, context)`` the tokens of a zero image embedding, for negative branches."""
    ip_scale: float


@dataclass(frozen=True)
class Animate3DCall:
    """Per model call (in the call's transformer options): the trained attention weights by ComfyUI's block key,
    and the image tokens of every image of the batch."""

    blocks: dict[tuple[str, int, int], TrainedAttention]
    image_tokens: torch.Tensor
    ip_scale: float


@dataclass(frozen=True)
class ImageEncoder:
    """Condition views ``(4, H, W, 3)`` -> projected CLIP image embeddings ``(4, width)``."""

    name: str
    width: int
    encode: Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LoadedAnimate3D:
    """What 'Animate3D Loader' gives: everything but the MVDream MODEL it patches."""

    name: str
    form: str
    """``modules`` (the released file) or ``unet`` (the whole UNet, as Animate3D's training saves it)."""
    max_frames: int
    motion: Any
    """ModelPatcher around the motion modules (``MotionModuleSet``)."""
    layers: Any
    """ModelPatcher around the trained attention weights (:class:`Animate3DAttentionLayers`)."""
    projection: ImageProjection
    """The IP-Adapter's image projection (CPU, float32)."""
    image_encoder: ImageEncoder
    unet_weights: dict[str, torch.Tensor] | None = None
    """Whole-UNet form: its spatial UNet in diffusers' names, set over the MVDream MODEL's weights."""


def patch_animate3d(model, loaded: LoadedAnimate3D, conditions: Animate3DConditions):
    """A clone of an MVDream ``model`` that is Animate3D conditioned on ``conditions``."""
    check_animate3d_fits(model, loaded)
    settings = VideoSettings(condition_cameras(), loaded.max_frames, model="animate3d")
    patched = patch_video_model(model, settings, loaded.motion.clone(), _reference_self_attention, BETA_SCHEDULE)
    sites = attention_sites(patched.model.diffusion_model)
    if loaded.unet_weights is not None:
        _set_unet_weights(patched, loaded)
    layers = loaded.layers.clone()
    patched.set_additional_models(ANIMATE3D_KEY, [layers])
    patched.set_model_attn1_patch(_keep_block_input)
    for site in sites:
        patched.set_model_attn2_replace(_image_cross_attention, *site)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, ANIMATE3D_KEY, _with_condition_views)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, ANIMATE3D_KEY,
                                 _clean_first_frame_in)
    patched.model_options["transformer_options"][ANIMATE3D_KEY] = conditions
    return patched


def diffusers_block_path(kind: str, number: int, depth: int) -> str:
    """ComfyUI's transformer-block key (``("input", 1, 0)``) -> the block's diffusers path, as Animate3D's files and
    the IP-Adapter's layer order name it (``down_blocks.0.attentions.0.transformer_blocks.0``)."""
    if kind == "middle":
        return f"mid_block.attentions.0.transformer_blocks.{depth}"
    level, index = divmod(number - 1 if kind == "input" else number, 3)  # the inverse of patching.ldm_block
    return f"{'down_blocks' if kind == 'input' else 'up_blocks'}.{level}.attentions.{index}.transformer_blocks.{depth}"


def check_animate3d_fits(model, loaded: LoadedAnimate3D) -> None:
    """Refuses Animate3D weights whose attention blocks or widths are not the MVDream ``model``'s."""
    layers = loaded.layers.model
    unet = model.model.diffusion_model
    sites = attention_sites(unet)
    paths = [diffusers_block_path(*site) for site in sites]
    if sorted(paths) != sorted(layers.paths):
        raise VividZooError(f"{loaded.name} does not fit this MODEL: it has {len(layers.paths)} attention blocks, the "
                            f"UNet {len(paths)}; Animate3D is built on MVDream sd-v1.5-4view")
    for site, path in zip(sites, paths):
        block = _transformer_block(unet, site)
        trained = layers[path]
        if (trained.to_q_i2v.in_features, trained.to_k_ip.in_features) != (block.attn1.to_q.in_features,
                                                                            block.attn2.to_k.in_features):
            raise VividZooError(
                f"{loaded.name} does not fit this MODEL at {path}: its layers are {trained.to_q_i2v.in_features} wide "
                f"with {trained.to_k_ip.in_features}-wide image tokens, the UNet's {block.attn1.to_q.in_features} with "
                f"{block.attn2.to_k.in_features}-wide text tokens; Animate3D is built on MVDream sd-v1.5-4view")


def _transformer_block(unet, site: tuple[str, int, int]):
    from comfy.ldm.modules.attention import SpatialTransformer

    kind, number, depth = site
    transformer = next(layer for layer in unet_block(unet, kind, number) if isinstance(layer, SpatialTransformer))
    return transformer.transformer_blocks[depth]


def _set_unet_weights(patched, loaded: LoadedAnimate3D) -> None:
    """The whole-UNet form's spatial UNet as ``set`` weight patches: it wins over MVDream's, as in the original."""
    names = comfy.utils.unet_to_diffusers(patched.model.model_config.unet_config)
    patches, unknown = {}, []
    for key, tensor in loaded.unet_weights.items():
        if key in names:
            patches[f"diffusion_model.{names[key]}"] = ("set", (tensor,))
        else:
            unknown.append(key)
    applied = set(patched.add_patches(patches, 1.0))
    unknown += [key for key in patches if key not in applied]
    if unknown:
        raise CheckpointError(loaded.name, f"its UNet does not fit the MVDream MODEL (e.g. {sorted(unknown)[:3]})")


# -- hooks (plain functions: ComfyUI deep-copies model options on every clone) --------------------

@pack_hook
def _keep_block_input(n, context_attn1, value_attn1, extra_options):
    # The same extra_options dict reaches this block's attn1 replace, which needs the normalised input.
    extra_options[BLOCK_INPUT_KEY] = n
    return n, context_attn1, value_attn1


@pack_hook
def _reference_self_attention(q, k, v, extra_options):
    call: Animate3DCall = extra_options[CALL_KEY]
    block = call.blocks[(*extra_options["block"], extra_options["block_index"])]
    attention = functools.partial(comfy_attention, precision=extra_options.get("attn_precision"))
    queries = block.to_q_i2v(extra_options.pop(BLOCK_INPUT_KEY))
    return reference_multiview_attention(q, k, v, queries, extra_options["n_heads"], extra_options[LAYOUT_KEY],
                                         block.to_out_i2v, attention)


@pack_hook
def _image_cross_attention(q, k, v, extra_options):
    call: Animate3DCall = extra_options[CALL_KEY]
    block = call.blocks[(*extra_options["block"], extra_options["block_index"])]
    attention = functools.partial(comfy_attention, precision=extra_options.get("attn_precision"))
    tokens = call.image_tokens.to(q)
    return decoupled_cross_attention(q, k, v, block.to_k_ip(tokens), block.to_v_ip(tokens), extra_options["n_heads"],
                                     call.ip_scale, attention)


def _call_layout(transformer_options: dict, batch: int) -> tuple[VideoLayout, int]:
    """The whole video in every call: Animate3D has no context windows (frame 0 must be in every call)."""
    if transformer_options.get("context_window") is not None:
        raise VividZooError("Animate3D samples all its frames at once (at most 32, frame 0 included): remove the "
                            "context-window node from this MODEL")
    settings: VideoSettings = transformer_options[KEY]
    copies = len(transformer_options.get("cond_or_uncond", [0]))
    layout = VideoLayout(settings.views, settings.frames or batch // (copies * settings.views))
    return layout, layout.copies(batch)


def image_tokens_for_batch(conditions: Animate3DConditions, cond_or_uncond: list[int], layout: VideoLayout):
    """``(copies * frames * views, tokens, context)``: view v's tokens for every image of view v in a positive
    copy (``cond_or_uncond`` 0), the zero embedding's tokens in a negative one (1)."""
    views = conditions.image_tokens[torch.arange(layout.images) % layout.views]
    empty = conditions.empty_tokens.expand_as(views)
    return torch.cat([empty if kind == 1 else views for kind in cond_or_uncond])


def _with_condition_views(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None,
                          **kwargs):
    conditions: Animate3DConditions = transformer_options[ANIMATE3D_KEY]
    layout, copies = _call_layout(transformer_options, x.shape[0])
    cond_or_uncond = transformer_options.get("cond_or_uncond", [0] * copies)
    layers: Animate3DAttentionLayers = additional_patcher(executor.class_obj.current_patcher, ANIMATE3D_KEY).model
    sites = attention_sites(executor.class_obj.diffusion_model)
    blocks = {site: layers[diffusers_block_path(*site)] for site in sites}
    call = Animate3DCall(blocks, image_tokens_for_batch(conditions, cond_or_uncond, layout).to(x.device),
                         conditions.ip_scale)
    denoised = executor(x, t, c_concat, c_crossattn, control, {**transformer_options, CALL_KEY: call}, **kwargs)
    first = layout.batch_indices([0], copies).to(denoised.device)
    denoised[first] = conditions.first_latents.repeat(copies, 1, 1, 1).to(denoised)
    return denoised


def _clean_first_frame_in(executor, x, timesteps, context, y, control, transformer_options, **kwargs):
    conditions: Animate3DConditions = transformer_options[ANIMATE3D_KEY]
    layout, copies = _call_layout(transformer_options, x.shape[0])
    x = x.clone()
    x[layout.batch_indices([0], copies).to(x.device)] = conditions.first_latents.repeat(copies, 1, 1, 1).to(x)
    return executor(x, timesteps, context, y, control, transformer_options, **kwargs)


# -- FreeInit ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FreeInitSettings:
    iterations: int


def add_free_init(model, iterations: int):
    """A clone of a video MODEL of the pack whose sampling runs ``iterations`` FreeInit passes."""
    if KEY not in model.model_options["transformer_options"]:
        raise VividZooError(NOT_A_VIDEO_MODEL)
    patched = model.clone()
    patched.model_options["transformer_options"][FREE_INIT_KEY] = FreeInitSettings(iterations)
    patched.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, FREE_INIT_KEY)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, FREE_INIT_KEY, _free_init)
    return patched


def _free_init(executor, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None, disable_pbar=False,
               seed=None, **kwargs):
    """FreeInit around a whole sampling run: after each pass but the last, the result diffused to the last training
    step with the first pass's noise, its low frequencies kept and the high ones from fresh noise, starts the next
    pass (as diffusers' ``FreeInitMixin``, which Animate3D uses). Frame 0 of an Animate3D video is the condition
    views and is left out, as the original does."""
    guider = executor.class_obj
    options = guider.model_options["transformer_options"]
    iterations = options[FREE_INIT_KEY].iterations
    if iterations <= 1:
        return executor(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed, **kwargs)
    layout = VideoLayout(options[KEY].views, check_video(guider.model_options, noise.shape[0]))
    skip = 1 if ANIMATE3D_KEY in options else 0
    generator = torch.Generator().manual_seed(seed or 0)
    torch.randn(noise.shape, generator=generator)  # the first pass's noise (ComfyUI's, from the same seed)
    model = guider.model_patcher
    final_alpha_bar = 1 / (1 + model.get_model_object("model_sampling").sigma_max.double().cpu() ** 2)
    initial = layout_to_video(noise.float().cpu(), layout.views)
    low_pass = butterworth_low_pass(layout.frames - skip, *noise.shape[-2:])
    for iteration in range(iterations):
        samples = executor(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed, **kwargs)
        if iteration == iterations - 1:
            return samples
        stop_if_cancelled()
        denoised = layout_to_video(model.model.process_latent_in(samples).float().cpu(), layout.views)
        mixed = reinitialise_at(denoised[:, :, skip:], initial[:, :, skip:], final_alpha_bar.float(), generator,
                                low_pass)
        noise = video_to_layout(torch.cat([initial[:, :, :skip], mixed], dim=2)).to(noise)
    return samples


"""Animate3D (MV-VDM) nodes: load it, condition the MVDream MODEL on 4 views of an object, FreeInit.

The files are read and checked by ``vividzoo_core`` (one-line errors naming the file and what would fit);
the MODEL is patched in ``animate3d_model.py``.
"""

from __future__ import annotations

import logging

import comfy.model_management as mm
import comfy.model_patcher
import comfy.ops
import torch
from comfy_api.latest import io, ui

from ..vividzoo_core.animate3d_pipeline import (
    VIEWS,
    Animate3DSettings,
    check_condition_images,
    clip_pixels,
    resize_for_latents,
)
from ..vividzoo_core.checkpoints.animate3d import MODULES_ONLY, load_animate3d
from ..vividzoo_core.checkpoints.clip_vision import (
    CLIP_VISION_DOWNLOAD_HINT,
    load_clip_vision,
)
from ..vividzoo_core.checkpoints.ip_adapter import (
    IP_ADAPTER_DOWNLOAD_HINT,
    load_ip_adapter,
)
from ..vividzoo_core.errors import CheckpointError, VividZooError
from ..vividzoo_core.network.animate3d import (
    Animate3DAttentionLayers,
    ImageProjection,
    animate3d_motion_modules,
)
from ..vividzoo_core.settings import (
    FRAMES,
    FREE_INIT_ITERATIONS,
    HEIGHT,
    IP_SCALE,
    MOST_FRAMES_AT_ONCE,
    WIDTH,
)
from .animate3d_model import (
    Animate3DConditions,
    ImageEncoder,
    LoadedAnimate3D,
    add_free_init,
    check_animate3d_fits,
    patch_animate3d,
)
from .inputs import numbers_in_range, setting_input
from .model_folders import (
    CLIP_VISION,
    IP_ADAPTER,
    MOTION,
    VIVIDZOO,
    describe,
    full_path,
    listed,
)
from .mvdream_model import is_mvdream_model
from .patching import NOT_MVDREAM, comfy_attention
from .types import Animate3D

IN_THE_FILE = "none (in the Animate3D file)"
FROM_INPUT = "none (use the clip_vision input)"
VIEW_NAMES = ("front", "left", "back", "right")


def _patcher(module: torch.nn.Module):
    """A ModelPatcher that moves ``module`` with the UNet (additional model), in the UNet's dtype."""
    module = module.requires_grad_(False).eval().to(mm.unet_dtype())
    return comfy.model_patcher.ModelPatcher(module, load_device=mm.get_torch_device(),
                                            offload_device=mm.unet_offload_device())


def file_image_encoder(path: str, width: int, reader: str) -> ImageEncoder:
    """The CLIP image encoder of a ``models/clip_vision`` file as ComfyUI's own CLIP vision model (its device and
    dtype handling), read and checked by the pack's loader (which knows any size, the tiny test encoder too), with
    the original's preprocessing (``CLIPImageProcessor``: :func:`clip_pixels`)."""
    import comfy.clip_model

    checkpoint = load_clip_vision(path)
    checkpoint.check_fits(width, reader)
    shape = checkpoint.shape
    config = {"hidden_size": shape.width, "intermediate_size": shape.intermediate, "num_hidden_layers": shape.layers,
              "num_attention_heads": shape.heads, "patch_size": shape.patch, "image_size": shape.image_size,
              "projection_dim": shape.projection, "hidden_act": "gelu", "model_type": "clip_vision_model",
              "num_channels": 3}
    device, offload = mm.text_encoder_device(), mm.text_encoder_offload_device()
    model = comfy.clip_model.CLIPVisionModelProjection(config, mm.text_encoder_dtype(device), offload,
                                                       comfy.ops.manual_cast)
    missing, unexpected = model.load_state_dict(checkpoint.weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(checkpoint.path, f"does not fit ComfyUI's CLIP vision model (missing {missing[:3]}, "
                                               f"unexpected {unexpected[:3]})")
    patcher = comfy.model_patcher.CoreModelPatcher(model.eval(), load_device=device, offload_device=offload)

    def encode(images: torch.Tensor) -> torch.Tensor:
        mm.load_model_gpu(patcher)
        pixels = clip_pixels(images, shape.image_size).to(patcher.load_device)
        with torch.no_grad():
            return model(pixel_values=pixels, intermediate_output=-2)[2].float().cpu()

    return ImageEncoder(f"{shape.name}, {checkpoint.path.name}", width, encode)


def comfy_image_encoder(clip_vision, width: int, reader: str) -> ImageEncoder:
    """A CLIP_VISION from ComfyUI's own 'Load CLIP Vision', with ComfyUI's preprocessing (see the docs)."""
    given = clip_vision.config.get("projection_dim") if hasattr(clip_vision, "config") else None
    if given != width:
        raise VividZooError(f"the connected CLIP vision model gives {given}-wide image embeddings but {reader} reads "
                            f"{width}-wide ones. {CLIP_VISION_DOWNLOAD_HINT}")

    def encode(images: torch.Tensor) -> torch.Tensor:
        return clip_vision.encode_image(images, crop=True)["image_embeds"].float().cpu()

    return ImageEncoder("the connected CLIP vision model (ComfyUI's preprocessing)", width, encode)


class Animate3DLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_Animate3DLoader",
            display_name="Vivid-ZOO Animate3D Loader",
            search_aliases=["Animate3D", "MV-VDM", "4D", "IP-Adapter"],
            category="VividZoo/loaders",
            description=(
                "Loads Animate3D (MV-VDM, NeurIPS 2024): its trained model animate3d_motion_modules.ckpt (motion "
                "modules with spatial attention, reference attention), the SD 1.5 IP-Adapter ip-adapter_sd15 and the "
                "CLIP ViT-H/14 image encoder, kept as ComfyUI_IPAdapter_plus users keep them. Connect a CLIP_VISION "
                "from 'Load CLIP Vision' instead of choosing a file if you like (its preprocessing differs slightly "
                "from the original's). Give the result to 'Animate3D Condition' with the MVDream MODEL. "
                f"Searched: {describe(VIVIDZOO, MOTION)}; {describe(IP_ADAPTER)}; {describe(CLIP_VISION)}."
            ),
            inputs=[
                io.Combo.Input("animate3d_name", options=listed(VIVIDZOO, MOTION),
                               tooltip="animate3d_motion_modules.ckpt (either form), from models/vividzoo or "
                                       "models/animatediff_models."),
                io.Combo.Input("ip_adapter_name", options=[*listed(IP_ADAPTER), IN_THE_FILE],
                               tooltip="ip-adapter_sd15.safetensors or .bin from models/ipadapter; 'none' only for an "
                                       "Animate3D file in the whole-UNet form, which holds the IP-Adapter."),
                io.Combo.Input("clip_vision_name", options=[*listed(CLIP_VISION), FROM_INPUT],
                               tooltip="The CLIP ViT-H/14 image encoder (CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors) "
                                       "from models/clip_vision; not read when the clip_vision input is connected."),
                io.ClipVision.Input("clip_vision", optional=True,
                                    tooltip="A CLIP ViT-H/14 from ComfyUI's 'Load CLIP Vision'; used instead of the "
                                            "file when connected."),
            ],
            outputs=[
                Animate3D.Output(display_name="animate3d", tooltip="For 'Animate3D Condition'."),
                io.String.Output(display_name="info", tooltip="What was loaded: the file's form, IP-Adapter and "
                                                              "image encoder."),
            ],
        )

    @classmethod
    def execute(cls, animate3d_name: str, ip_adapter_name: str, clip_vision_name: str,
                clip_vision=None) -> io.NodeOutput:
        checkpoint = load_animate3d(full_path(animate3d_name, VIVIDZOO, MOTION))
        ip_adapter = None
        if checkpoint.form == MODULES_ONLY:
            if ip_adapter_name == IN_THE_FILE:
                raise VividZooError(f"{animate3d_name} holds only Animate3D's modules; choose the IP-Adapter in "
                                    f"ip_adapter_name. {IP_ADAPTER_DOWNLOAD_HINT}")
            ip_adapter = load_ip_adapter(full_path(ip_adapter_name, IP_ADAPTER))
        projection_weights = ip_adapter.image_projection if ip_adapter else checkpoint.image_projection
        width, context = projection_weights["image_embeds.weight"].shape[1], projection_weights["norm.weight"].shape[0]
        reader = ip_adapter.path.name if ip_adapter else animate3d_name
        if clip_vision is not None:
            encoder = comfy_image_encoder(clip_vision, width, reader)
        elif clip_vision_name == FROM_INPUT:
            raise VividZooError("choose the CLIP ViT-H/14 image encoder in clip_vision_name, or connect a CLIP_VISION. "
                                f"{CLIP_VISION_DOWNLOAD_HINT}")
        else:
            encoder = file_image_encoder(full_path(clip_vision_name, CLIP_VISION), width, reader)
        projection = ImageProjection(width, context)
        projection.load_state_dict(projection_weights)
        layers = Animate3DAttentionLayers.from_checkpoints(checkpoint, ip_adapter, ops=comfy.ops.manual_cast)
        motion = animate3d_motion_modules(checkpoint, ops=comfy.ops.manual_cast, attention=comfy_attention)
        loaded = LoadedAnimate3D(animate3d_name, checkpoint.form, motion.max_frames, _patcher(motion), _patcher(layers),
                                 projection.requires_grad_(False).eval(), encoder, checkpoint.unet)
        form = "modules only" if checkpoint.form == MODULES_ONLY else "whole UNet"
        info = (f"Animate3D: {animate3d_name} ({form}, {checkpoint.parameter_count / 1e6:.1f} M parameters); "
                f"IP-Adapter: {reader if ip_adapter else 'in the Animate3D file'}; image encoder: {encoder.name}")
        logging.info("Vivid-ZOO: %s", info)
        return io.NodeOutput(loaded, info, ui=ui.PreviewText(info))


class Animate3DViews(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_Animate3DViews",
            display_name="Animate3D Condition Views",
            search_aliases=["Animate3D", "multiview", "multi-view", "4 views"],
            category="VividZoo",
            description=(
                "Puts 4 images of an object, taken from the front, left, back and right at 15 degrees elevation "
                "(Animate3D's condition views), in one IMAGE batch in that order for 'Animate3D Condition'. Unlike "
                "the stock Image Batch it refuses images of different sizes instead of stretching one."
            ),
            inputs=[io.Image.Input(name, tooltip=f"The {name} view (the first image of the batch is used).")
                    for name in VIEW_NAMES],
            outputs=[io.Image.Output(display_name="views", tooltip="The 4 views, front, left, back, right.")],
        )

    @classmethod
    def execute(cls, front, left, back, right) -> io.NodeOutput:
        views = check_condition_images([image[:1] for image in (front, left, back, right)], "Animate3D views")
        return io.NodeOutput(views)


class Animate3DCondition(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_Animate3DCondition",
            display_name="Animate3D Condition",
            search_aliases=["Animate3D", "4D", "multiview", "multi-view"],
            category="VividZoo",
            description=(
                "Makes the MVDream MODEL Animate3D, animating 4 views of a static object (front, left, back, right at "
                "15 degrees elevation) with the prompt: the views enter as IP-Adapter image tokens and as the clean "
                "frame 0 of every view, the motion modules and reference attention are added, cameras and beta "
                "schedule set. Sample the MODEL with the stock KSampler (Animate3D: ddim, ddim_uniform, 25 steps, cfg "
                "7.5) on the latent given here; frame 0 of the result is the views. Add 'Vivid-ZOO FreeInit' for the "
                "original's FreeInit (3 passes). Memory: 4 views x 16 frames x 256 px needs about 8 to 10 GB in fp16."
            ),
            inputs=[
                io.Model.Input("model", tooltip="MODEL from 'Vivid-ZOO MVDream Checkpoint Loader' (sd-v1.5-4view.pt)."),
                Animate3D.Input("animate3d", tooltip="From 'Vivid-ZOO Animate3D Loader'."),
                io.Vae.Input("vae", tooltip="The MVDream checkpoint's VAE: encodes the views as frame 0."),
                io.Image.Input("images", tooltip="Exactly 4 views in one batch: front, left, back, right (Load Image + "
                                                 "'Animate3D Condition Views', an MVDream generation, renders)."),
                setting_input(FRAMES, tooltip="Frames per view, frame 0 being the condition views (Animate3D: 16; 2 "
                                              f"to {MOST_FRAMES_AT_ONCE}, its motion modules' limit)."),
                setting_input(WIDTH),
                setting_input(HEIGHT),
                setting_input(IP_SCALE),
            ],
            outputs=[
                io.Model.Output(tooltip="The Animate3D MODEL, for KSampler / KSamplerAdvanced / SamplerCustom."),
                io.Latent.Output(tooltip="The empty latent of 4 views x frames for the sampler."),
            ],
        )

    @classmethod
    def validate_inputs(cls, ip_scale=None) -> bool | str:
        return numbers_in_range(cls, ip_scale=ip_scale)

    @classmethod
    def execute(cls, model, animate3d: LoadedAnimate3D, vae, images, frames: int, width: int, height: int,
                ip_scale: float) -> io.NodeOutput:
        if not is_mvdream_model(model):
            raise VividZooError(NOT_MVDREAM)
        Animate3DSettings("", frames=frames, width=width, height=height, ip_scale=ip_scale, seed=0).check(
            animate3d.max_frames)
        check_animate3d_fits(model, animate3d)
        views = check_condition_images(images)
        pixels = resize_for_latents(views, width, height)
        embeddings = animate3d.image_encoder.encode(views)
        with torch.no_grad():
            tokens = animate3d.projection(embeddings)
            empty = animate3d.projection(torch.zeros(1, embeddings.shape[1]))[0]
        latents = vae.encode(((pixels + 1) / 2).permute(0, 2, 3, 1))
        first = model.model.process_latent_in(latents.float()).cpu()
        conditions = Animate3DConditions(first, tokens, empty, ip_scale)
        samples = torch.zeros([VIEWS * frames, 4, height // 8, width // 8], device=mm.intermediate_device())
        return io.NodeOutput(patch_animate3d(model, animate3d, conditions), {"samples": samples})


class FreeInit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_FreeInit",
            display_name="Vivid-ZOO FreeInit",
            search_aliases=["Animate3D", "AnimateDiff", "FreeInit"],
            category="VividZoo",
            description=(
                "FreeInit (Wu et al. 2023), as Animate3D uses it: the whole sampling runs several times; each new run "
                "starts from the last result diffused back to noise, its low spatio-temporal frequencies (Butterworth "
                "filter, order 4, stop frequency 0.25) kept and the high ones fresh. Steadier motion, less of it; "
                "each pass costs a whole run and the progress bar restarts for each. Works on the MODEL of "
                "'Animate3D Condition' (frame 0, the condition views, is left out) or of 'Apply Vivid-ZOO'."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The MODEL of 'Animate3D Condition' or 'Apply Vivid-ZOO'."),
                setting_input(FREE_INIT_ITERATIONS),
            ],
            outputs=[io.Model.Output(tooltip="The same MODEL sampling with FreeInit.")],
        )

    @classmethod
    def execute(cls, model, free_init_iterations: int) -> io.NodeOutput:
        return io.NodeOutput(add_free_init(model, free_init_iterations))


NODES = [Animate3DLoader, Animate3DViews, Animate3DCondition, FreeInit]

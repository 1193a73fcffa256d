"""Loaders: the MVDream checkpoint (MODEL, CLIP, VAE), the motion module and the alignment layers."""

from __future__ import annotations

import logging

import comfy.model_management as mm
import comfy.model_patcher
import comfy.ops
import folder_paths
from comfy_api.latest import io, ui

from ..vividzoo_core.cameras import orbit
from ..vividzoo_core.checkpoints import load_alignment, load_motion_module
from ..vividzoo_core.checkpoints.alignment import FORMAT as ALIGNMENT_FORMAT
from ..vividzoo_core.checkpoints.motion import VERSION_NAMES
from ..vividzoo_core.compat import TRAINING_FREE_NOTICE
from ..vividzoo_core.network import MotionModuleSet
from .model_folders import CHECKPOINTS, MOTION, VIVIDZOO, describe, full_path, listed
from .mvdream_model import load_mvdream_model
from .patching import comfy_attention, patch_vividzoo
from .types import Alignment, LoadedAlignment, LoadedMotionModule, MotionModule

TRAINING_FREE = "none (training-free)"


def alignment_files() -> list[str]:
    """Alignment files in models/vividzoo, told apart from other safetensors by their header alone."""
    from safetensors import safe_open

    found = []
    for name in folder_paths.get_filename_list(VIVIDZOO):
        if not name.endswith(".safetensors"):
            continue
        try:
            with safe_open(folder_paths.get_full_path(VIVIDZOO, name), framework="pt") as handle:
                if (handle.metadata() or {}).get("format") == ALIGNMENT_FORMAT:
                    found.append(name)
        except Exception:  # a damaged file is reported when it is loaded, not while listing
            found.append(name)
    return found


class MVDreamCheckpointLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        alignments = set(alignment_files())
        return io.Schema(
            node_id="VividZoo_MVDreamCheckpointLoader",
            display_name="Vivid-ZOO MVDream Checkpoint Loader",
            search_aliases=["MVDream", "multiview", "multi-view", "checkpoint"],
            category="VividZoo/loaders",
            description=(
                "Loads an MVDream multi-view checkpoint (sd-v1.5-4view.pt, or sd-v2.1-base-4view.pt) as ComfyUI's "
                "own MODEL, CLIP and VAE. The MODEL already attends across views with a default 4-view orbit, so "
                "a stock KSampler on a batch of 4 makes MVDream multi-view images; 'Apply Vivid-ZOO' or "
                "'Vivid-ZOO Sampler' add the motion modules and your cameras. Plain Stable Diffusion checkpoints "
                f"are refused (no camera embedding). Searched: {describe(VIVIDZOO, CHECKPOINTS)}."
            ),
            inputs=[
                io.Combo.Input("ckpt_name", options=[f for f in listed(VIVIDZOO, CHECKPOINTS) if f not in alignments],
                               tooltip="MVDream checkpoint file, from models/vividzoo or models/checkpoints."),
            ],
            outputs=[
                io.Model.Output(tooltip="MVDream UNet with multi-view attention (default 4-view orbit cameras)."),
                io.Clip.Output(tooltip="The checkpoint's text encoder, for the stock CLIP Text Encode node."),
                io.Vae.Output(tooltip="The checkpoint's VAE, for the stock VAE Decode / Encode nodes."),
            ],
        )

    @classmethod
    def execute(cls, ckpt_name: str) -> io.NodeOutput:
        path = full_path(ckpt_name, VIVIDZOO, CHECKPOINTS)
        model, clip, vae, checkpoint = load_mvdream_model(path)
        if clip is None or vae is None:
            logging.warning("Vivid-ZOO: %s is UNet-only; load a CLIP and a VAE with the stock loaders", ckpt_name)
        return io.NodeOutput(patch_vividzoo(model, orbit(4)), clip, vae)


class MotionModuleLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_MotionModuleLoader",
            display_name="Vivid-ZOO AnimateDiff Motion Module Loader",
            search_aliases=["AnimateDiff", "motion module", "4D", "video"],
            category="VividZoo/loaders",
            description=(
                "Loads an AnimateDiff motion module for Stable Diffusion 1.5: mm_sd_v15_v2.ckpt (v2, the paper's, "
                "32 frames at once), mm_sd_v14 / mm_sd_v15 (v1, 24 frames) or v3_sd15_mm (v3, 32 frames). "
                "SDXL and HotshotXL modules are refused with the reason. Shares AnimateDiff-Evolved's folder. "
                f"Searched: {describe(MOTION)}."
            ),
            inputs=[
                io.Combo.Input("model_name", options=listed(MOTION),
                               tooltip=f"Motion module file from models/animatediff_models ({describe(MOTION)})."),
            ],
            outputs=[MotionModule.Output(display_name="motion_module",
                                         tooltip="The motion modules, for 'Apply Vivid-ZOO' or 'Vivid-ZOO Sampler'.")],
        )

    @classmethod
    def execute(cls, model_name: str) -> io.NodeOutput:
        checkpoint = load_motion_module(full_path(model_name, MOTION))
        modules = MotionModuleSet.from_checkpoint(checkpoint, ops=comfy.ops.manual_cast, attention=comfy_attention)
        modules.load_alignment(None)  # trained alignment arrives as weight patches (see patching.py)
        modules = modules.requires_grad_(False).eval().to(mm.unet_dtype())
        patcher = comfy.model_patcher.ModelPatcher(modules, load_device=mm.get_torch_device(),
                                                   offload_device=mm.unet_offload_device())
        logging.info("Vivid-ZOO: %s is %s, %d modules", model_name, VERSION_NAMES[checkpoint.version],
                     len(checkpoint.channels))
        return io.NodeOutput(LoadedMotionModule(model_name, checkpoint.version, checkpoint.channels,
                                                checkpoint.max_frames, patcher))


class AlignmentLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_AlignmentLoader",
            display_name="Vivid-ZOO Alignment Loader",
            search_aliases=["AnimateDiff", "MVDream", "4D"],
            category="VividZoo/loaders",
            description=(
                "Loads trained Vivid-ZOO alignment layers (a .safetensors from `vividzoo train`), or none: the "
                "training-free combination of MVDream and AnimateDiff, which the paper shows is clearly worse. "
                f"No public alignment weights exist; train your own. Searched: {describe(VIVIDZOO)}."
            ),
            inputs=[
                io.Combo.Input("alignment_name", options=[TRAINING_FREE, *alignment_files()], default=TRAINING_FREE,
                               tooltip="Alignment file from models/vividzoo, or none (training-free)."),
            ],
            outputs=[
                Alignment.Output(display_name="alignment", tooltip="Alignment weights, or the training-free marker."),
                io.String.Output(display_name="info", tooltip="What was loaded: training-free, or the file's details."),
            ],
        )

    @classmethod
    def execute(cls, alignment_name: str) -> io.NodeOutput:
        if alignment_name == TRAINING_FREE:
            loaded, info = LoadedAlignment(TRAINING_FREE, None), f"training-free: {TRAINING_FREE_NOTICE}"
        else:
            checkpoint = load_alignment(full_path(alignment_name, VIVIDZOO))
            loaded = LoadedAlignment(alignment_name, checkpoint)
            info = (f"aligned: {alignment_name}, for {VERSION_NAMES[checkpoint.motion_version]} motion modules, "
                    f"{checkpoint.parameter_count / 1e6:.1f} M parameters, {checkpoint.info}")
        return io.NodeOutput(loaded, info, ui=ui.PreviewText(info))


NODES = [MVDreamCheckpointLoader, MotionModuleLoader, AlignmentLoader]

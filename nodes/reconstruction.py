"""3D Gaussians from a multi-view video: load LGM / L4GM, reconstruct, save the sequence with a turntable preview.

The work is ``vividzoo_core.reconstruction_pipeline``'s (the command line's ``vividzoo reconstruct``): the same
checks (one-line errors naming what would fit), the same files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from comfy_api.latest import io, ui

from ..vividzoo_core.checkpoints.files import read_checkpoint
from ..vividzoo_core.checkpoints.reconstruction import (
    KIND_NAMES,
    L4GM,
    L4GM_INTERP,
    file_kind,
    is_reconstruction,
    parse_reconstruction,
)
from ..vividzoo_core.devices import resolve_dtype
from ..vividzoo_core.errors import CheckpointError, VividZooError
from ..vividzoo_core.gaussian_sequence import TURNTABLE_MP4
from ..vividzoo_core.memory import GB, reconstruction_estimate_gb
from ..vividzoo_core.network.l4gm_runs import WINDOW as L4GM_WINDOW
from ..vividzoo_core.network.lgm import build_network
from ..vividzoo_core.reconstruction_inputs import MODEL_VIEWS, ReconstructionInput
from ..vividzoo_core.reconstruction_pipeline import (
    Reconstruction,
    ReconstructionPipeline,
    save_reconstruction,
    sequence_info,
)
from ..vividzoo_core.settings import FPS, RECONSTRUCTION_SIZE
from .comfy_internals import compute_device, make_room
from .inputs import numbers_in_range, setting_input
from .model_folders import RECONSTRUCTION, describe, full_path, listed
from .types import Cameras, Gaussians, ReconstructionModel
from .video import new_output_folder, split_views


@dataclass(frozen=True)
class LoadedReconstruction:
    name: str
    kind: str
    """``lgm``, ``l4gm`` or ``l4gm_interp``."""
    network: torch.nn.Module
    """On the CPU; moved to ComfyUI's device while it runs."""


@dataclass(frozen=True)
class GaussianResult:
    reconstruction: Reconstruction
    info: dict
    preview_size: int
    """The turntable's size in pixels: the model's input size."""


class ReconstructionModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_ReconstructionModelLoader",
            display_name="Vivid-ZOO LGM / L4GM Loader",
            search_aliases=["LGM", "L4GM", "gaussian", "gaussian splatting", "3DGS", "4D", "reconstruction"],
            category="VividZoo/reconstruction",
            description=(
                "Loads a feed-forward Gaussian reconstruction model: LGM (model_fp16_fixrot.safetensors, "
                "huggingface.co/ashawkey/LGM: 4 views -> 3D Gaussians, per frame), L4GM (recon.safetensors, "
                "huggingface.co/jiawei011/L4GM: a temporally consistent sequence) or L4GM's interpolation model "
                "(interp.safetensors: 3x the frames). The kind is read from the file; loading is strict (every "
                f"tensor used, none missing). Searched: {describe(RECONSTRUCTION)}."
            ),
            inputs=[io.Combo.Input("model_name", options=listed(RECONSTRUCTION),
                                   tooltip=f"LGM / L4GM file from models/lgm ({describe(RECONSTRUCTION)}).")],
            outputs=[ReconstructionModel.Output(display_name="model",
                                                tooltip="For 'Multi-View Video to Gaussians' (model, or "
                                                        "interpolation for L4GM's interp.safetensors).")],
        )

    @classmethod
    def execute(cls, model_name: str) -> io.NodeOutput:
        loaded = read_checkpoint(full_path(model_name, RECONSTRUCTION))
        if not is_reconstruction(loaded):
            parse_reconstruction(loaded, "lgm")  # raises, saying what the file is instead
        kind = file_kind(loaded)
        network = build_network(parse_reconstruction(loaded, kind))
        return io.NodeOutput(LoadedReconstruction(model_name, kind, network),
                             ui=ui.PreviewText(f"{model_name}: {KIND_NAMES[kind]}"))


class MultiViewVideoToGaussians(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_MultiViewVideoToGaussians",
            display_name="Multi-View Video to Gaussians",
            search_aliases=["LGM", "L4GM", "gaussian", "gaussian splatting", "3DGS", "4D", "reconstruction", "ply"],
            category="VividZoo/reconstruction",
            description=(
                "Reconstructs a 4-view video as 3D Gaussians: LGM frame by frame, or L4GM over the sequence "
                "(view 0 of every frame with views 1-3 of frame 0, as L4GM was trained), optionally 3x the frames "
                "with L4GM's interpolation model. Scores each frame: its Gaussians rendered at the input cameras "
                "against the input views (PSNR, SSIM). The views must be square, 256 px or a multiple."
            ),
            inputs=[
                io.Image.Input("images", tooltip="4 views x frames images, frame by frame (VAE Decode output)."),
                Cameras.Input("cameras", tooltip="The cameras the views were made with (4 views 90 degrees apart)."),
                ReconstructionModel.Input("model", tooltip="LGM or L4GM (recon.safetensors)."),
                setting_input(FPS, tooltip="Frames per second of the video (x3 with interpolation)."),
                io.Boolean.Input("moving_views", default=False,
                                 tooltip="L4GM: feed all 4 views of every frame instead of its training rule "
                                         "(view 0 moving, views 1-3 of frame 0); outside its training distribution."),
                io.Boolean.Input("score", default=True,
                                 tooltip="Render at the input cameras and score each frame (slow on the CPU)."),
                setting_input(RECONSTRUCTION_SIZE),
                ReconstructionModel.Input("interpolation", optional=True,
                                          tooltip="L4GM's interp.safetensors: 2 frames between each pair (3x)."),
            ],
            outputs=[
                Gaussians.Output(display_name="gaussians", tooltip="The Gaussian sequence, for 'Save Gaussian "
                                                                    "Sequence'."),
                io.String.Output(display_name="info", tooltip="Frames, warnings and the reconstruction score."),
            ],
        )

    @classmethod
    def validate_inputs(cls, fps=None, input_size=None) -> bool | str:
        return numbers_in_range(cls, fps=fps, input_size=input_size)

    @classmethod
    def execute(cls, images: torch.Tensor, cameras, model: LoadedReconstruction, fps: float, moving_views: bool,
                score: bool, input_size: int, interpolation: LoadedReconstruction | None = None) -> io.NodeOutput:
        if model.kind == L4GM_INTERP:
            raise VividZooError(f"{model.name} is {KIND_NAMES[L4GM_INTERP]}: connect it to 'interpolation' and "
                                "recon.safetensors to 'model'")
        if interpolation is not None and interpolation.kind != L4GM_INTERP:
            raise CheckpointError(interpolation.name, f"this is {KIND_NAMES[interpolation.kind]}, not "
                                                      f"{KIND_NAMES[L4GM_INTERP]}")
        if moving_views and model.kind != L4GM:
            raise VividZooError("moving_views is an L4GM option; LGM always takes each frame's 4 views")
        video = ReconstructionInput(split_views(images, MODEL_VIEWS)[..., :3].float().cpu(), cameras, fps,
                                    Path("images"))
        device = compute_device()
        dtype = resolve_dtype("auto", device)
        networks = [model.network] + ([interpolation.network] if interpolation is not None else [])
        if device.type != "cpu":  # the estimate is of GPU memory; ComfyUI unloads models until it is free
            frames_at_once = min(L4GM_WINDOW, video.frame_count) if model.kind == L4GM else 1
            high = reconstruction_estimate_gb(model.kind, frames_at_once, input_size, interpolation is not None)[1]
            make_room(int(high * GB), device)
        names = {model.kind: model.name, **({L4GM_INTERP: interpolation.name} if interpolation else {})}
        try:
            for network in networks:
                network.to(device, dtype)
            pipeline = ReconstructionPipeline(model.kind, model.network,
                                              interpolation.network if interpolation else None, device, dtype,
                                              input_size, names)
            result = pipeline.reconstruct(video, moving_views, score)
        finally:
            for network in networks:
                network.to("cpu", torch.float32)
        info = sequence_info(result, pipeline, video, moving_views)
        text = summary(result)
        return io.NodeOutput(GaussianResult(result, info, input_size), text, ui=ui.PreviewText(text))


def summary(result: Reconstruction) -> str:
    lines = [f"{len(result.gaussians)} frames of Gaussians at {result.fps:g} fps"]
    if result.score is not None:
        lines.append(f"reconstruction score: PSNR {result.score.mean_psnr:.2f} dB, SSIM {result.score.mean_ssim:.3f} "
                     "(renders at the input cameras vs the input views)")
    lines += [f"warning: {warning}" for warning in result.warnings]
    return "\n".join(lines)


class SaveGaussianSequence(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_SaveGaussianSequence",
            display_name="Save Gaussian Sequence (PLY)",
            search_aliases=["gaussian", "gaussian splatting", "3DGS", "4D", "ply", "save", "turntable"],
            category="VividZoo/reconstruction",
            description=(
                "Saves a Gaussian sequence to a new folder in ComfyUI's output folder: one standard 3D Gaussian "
                "Splatting PLY per frame (opens in SuperSplat, gsplat and ComfyUI's Load 3D), gaussians.json "
                "(fps, files, cameras), info.json (settings and the per-frame score) and a turntable video, shown "
                "here."
            ),
            inputs=[
                Gaussians.Input("gaussians", tooltip="From 'Multi-View Video to Gaussians'."),
                io.String.Input("filename_prefix", default="VividZoo/gaussians",
                                tooltip="Folder name prefix in the output folder; may contain subfolders."),
                io.Boolean.Input("preview", default=True,
                                 tooltip="Render the turntable video (slow on the CPU for large sequences)."),
            ],
            outputs=[io.String.Output(display_name="folder", tooltip="Where the files were written.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, gaussians: GaussianResult, filename_prefix: str, preview: bool) -> io.NodeOutput:
        folder, subfolder = new_output_folder(filename_prefix)
        save_reconstruction(gaussians.reconstruction, folder, gaussians.info, preview, gaussians.preview_size)
        if not preview:
            return io.NodeOutput(folder, ui=ui.PreviewText(folder))
        saved = ui.SavedResult(TURNTABLE_MP4, subfolder, io.FolderType.output)
        return io.NodeOutput(folder, ui=ui.PreviewVideo([saved]))


NODES: list[type[io.ComfyNode]] = [ReconstructionModelLoader, MultiViewVideoToGaussians, SaveGaussianSequence]

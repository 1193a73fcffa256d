"""The alignment-aware sampler: Apply Vivid-ZOO, context windows and KSampler in one node."""

from __future__ import annotations

import comfy.samplers
from comfy_api.latest import io

from ..vividzoo_core.errors import VividZooError
from ..vividzoo_core.layout import VideoLayout
from ..vividzoo_core.settings import BETA_SCHEDULE, CFG, CONTEXT_FRAMES, CONTEXT_OVERLAP, SEED, STEPS
from .apply import alignment_input, video_model_inputs
from .inputs import numbers_in_range, setting_input
from .patching import add_context_windows, check_video, patch_vividzoo
from .preview import sample_with_grid_preview


class VividZooSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_Sampler",
            display_name="Vivid-ZOO Sampler (multi-view 4D video)",
            search_aliases=["AnimateDiff", "MVDream", "multiview", "multi-view", "4D", "KSampler"],
            category="VividZoo",
            description=(
                "Samples a multi-view video: applies Vivid-ZOO (motion modules, alignment or training-free, "
                "cameras, beta schedule) and runs ComfyUI's sampler, with a progress bar and a preview of all "
                "views of one frame as a grid, the frame moving on each step. "
                "Videos longer than the motion module's limit (32 frames for v2) are denoised in sliding context "
                "windows of whole frames. Checks views x frames and the cameras before the first step."
            ),
            inputs=[
                *video_model_inputs(),
                io.Conditioning.Input("positive", tooltip="Prompt, e.g. 'a corgi running, 3d asset'."),
                io.Conditioning.Input("negative", tooltip="Negative prompt (the paper: empty)."),
                io.Latent.Input("latent_image", tooltip="From 'Empty Multi-View Video Latent' (views x frames)."),
                # ComfyUI's way to a random seed: 'randomize' after each run (the widget under the seed).
                setting_input(SEED, tooltip="Random seed of the noise.", default=0, control_after_generate=True),
                setting_input(STEPS),
                setting_input(CFG),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="ddim",
                               tooltip="Sampling algorithm (the paper: ddim)."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="ddim_uniform",
                               tooltip="Timestep spacing (ddim_uniform matches DDIM)."),
                setting_input(BETA_SCHEDULE),
                setting_input(CONTEXT_FRAMES),
                setting_input(CONTEXT_OVERLAP),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="1.0 for text to video; lower keeps more of an input latent."),
                alignment_input(),
            ],
            outputs=[io.Latent.Output(tooltip="The denoised multi-view video latents (views x frames).")],
        )

    @classmethod
    def validate_inputs(cls, cfg=None, denoise=None) -> bool | str:
        return numbers_in_range(cls, cfg=cfg, denoise=denoise)

    @classmethod
    def execute(cls, model, motion_module, cameras, positive, negative, latent_image, seed: int, steps: int,
                cfg: float, sampler_name: str, scheduler: str, beta_schedule: str, context_frames: int,
                context_overlap: int, denoise: float, alignment=None) -> io.NodeOutput:
        if context_frames > motion_module.max_frames:
            raise VividZooError(
                f"context_frames {context_frames} is longer than the motion module's limit of "
                f"{motion_module.max_frames} frames ({motion_module.name}); set it to at most "
                f"{motion_module.max_frames}, or 0 for the limit"
            )
        patched = patch_vividzoo(model, cameras, motion_module, alignment, beta_schedule)
        batch = latent_image["samples"].shape[0]
        window = context_frames or motion_module.max_frames
        if batch // cameras.views > window:
            add_context_windows(patched, cameras.views, window, context_overlap)
        check_video(patched.model_options, batch)
        latent = sample_with_grid_preview(patched, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                          latent_image, denoise, VideoLayout(cameras.views, batch // cameras.views))
        return io.NodeOutput(latent)


NODES = [VividZooSampler]

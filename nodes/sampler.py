"""The alignment-aware sampler: Apply Vivid-ZOO, context windows and KSampler in one node."""

from __future__ import annotations

import comfy.samplers
from comfy_api.latest import io

from ..vividzoo_core.errors import VividZooError
from ..vividzoo_core.pipeline import DEFAULT_CONTEXT_OVERLAP
from .apply import alignment_input, beta_schedule_input, video_model_inputs
from .number_inputs import numbers_in_range
from .patching import add_context_windows, check_video, patch_vividzoo


class VividZooSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_Sampler",
            display_name="Vivid-ZOO Sampler",
            category="VividZoo",
            description=(
                "Samples a multi-view video: applies Vivid-ZOO (motion modules, alignment or training-free, "
                "cameras, beta schedule) and runs ComfyUI's sampler, with latent previews and a progress bar. "
                "Videos longer than the motion module's limit (32 frames for v2) are denoised in sliding context "
                "windows of whole frames. Checks views x frames and the cameras before the first step."
            ),
            inputs=[
                *video_model_inputs(),
                io.Conditioning.Input("positive", tooltip="Prompt, e.g. 'a corgi running, 3d asset'."),
                io.Conditioning.Input("negative", tooltip="Negative prompt (the paper: empty)."),
                io.Latent.Input("latent_image", tooltip="From 'Empty Multi-View Video Latent' (views x frames)."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Random seed for the noise."),
                io.Int.Input("steps", default=50, min=1, max=10000, tooltip="Denoising steps (the paper: 50 DDIM)."),
                io.Float.Input("cfg", default=7.5, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale (the paper: 7.5)."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="ddim",
                               tooltip="Sampling algorithm (the paper: ddim)."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="ddim_uniform",
                               tooltip="Timestep spacing (ddim_uniform matches DDIM)."),
                beta_schedule_input(),
                io.Int.Input("context_frames", default=0, min=0, max=64,
                             tooltip="Frames per sliding context window; 0 = the motion module's limit. Only used "
                                     "when the video has more frames than this."),
                io.Int.Input("context_overlap", default=DEFAULT_CONTEXT_OVERLAP, min=0, max=32,
                             tooltip="Frames shared by neighbouring context windows (blended smoothly)."),
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
        from nodes import common_ksampler  # ComfyUI's own KSampler routine (noise, previews, progress)

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
        (latent,) = common_ksampler(patched, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                    latent_image, denoise=denoise)
        return io.NodeOutput(latent)


NODES = [VividZooSampler]

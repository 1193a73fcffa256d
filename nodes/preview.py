"""Sampling previews of a multi-view video: all views of one frame as one grid, as ``grid.mp4`` shows them, the
frame moving on with each step so the preview plays the video while it sharpens.

ComfyUI's previewers (``latent_preview``: Latent2RGB and TAESD) show the first image of the batch they are given;
this callback gives them one latent image holding the grid. The stock KSampler builds its own callback
(``latent_preview.prepare_callback``), so there the preview stays the batch's first image: frame 0, view 0.
"""

from __future__ import annotations

import comfy.sample
import comfy.utils

from ..vividzoo_core.layout import VideoLayout
from ..vividzoo_core.video import frame_grid


def grid_preview_callback(model, steps: int, layout: VideoLayout):
    """Like ``latent_preview.prepare_callback``, previewing step ``s``'s prediction of frame ``s % frames``."""
    import latent_preview  # ComfyUI's top-level module: imported when sampling, not when the pack loads

    previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)
    progress = comfy.utils.ProgressBar(steps)

    def callback(step, x0, x, total_steps):
        image = None
        if previewer:
            image = previewer.decode_latent_to_preview_image("JPEG", frame_grid(x0, layout, step % layout.frames))
        progress.update_absolute(step + 1, total_steps, image)

    return callback


def sample_with_grid_preview(model, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str, positive,
                             negative, latent: dict, denoise: float, layout: VideoLayout) -> dict:
    """``nodes.common_ksampler`` (same noise, same sampling) with the grid preview."""
    latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"],
                                                           latent.get("downscale_ratio_spacial", None))
    noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    samples = comfy.sample.sample(
        model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=denoise,
        noise_mask=latent.get("noise_mask"), callback=grid_preview_callback(model, steps, layout),
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    out = {k: v for k, v in latent.items() if k != "downscale_ratio_spacial"}
    out["samples"] = samples
    return out

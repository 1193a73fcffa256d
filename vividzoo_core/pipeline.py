"""Standalone text-to-multi-view-video pipeline: DDIM with classifier-free guidance.

Everything is built from local files (MVDream checkpoint, motion module, optional alignment); no
Hub access. The negative branch uses the same cameras as the positive one, as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from . import __version__
from .cameras import CameraRig
from .checkpoints import load_alignment, load_motion_module, load_mvdream
from .compat import check_pairing
from .context_windows import blend_windows, frame_windows
from .devices import resolve_device, resolve_dtype
from .diffusers_host import (
    VividZooUNet,
    build_text_encoder,
    build_unet,
    build_vae,
    clip_tokenizer,
    decode_latents,
    encode_text,
)
from .errors import VividZooError
from .layout import VideoLayout
from .memory import available_bytes, check_fits
from .network import MotionModuleSet
from .schedules import ddim_scheduler
from .settings import FRAMES, GenerationSettings
from .video import MultiViewVideo


class VividZooPipeline:
    def __init__(self, network: VividZooUNet, vae, text_encoder, tokenizer, device: torch.device,
                 dtype: torch.dtype, notices: list[str], names: dict[str, str]) -> None:
        self.network, self.vae, self.text_encoder, self.tokenizer = network, vae, text_encoder, tokenizer
        self.device, self.dtype = device, dtype
        self.notices = notices
        self.names = names
        # Free bytes for sampling, asked before each video; replaceable (tests, callers that know better).
        self.memory_available: Callable[[], int | None] = lambda: available_bytes(device)

    @classmethod
    def from_files(cls, mvdream: str | Path, motion: str | Path | None, alignment: str | Path | None = None,
                   device: str = "auto", dtype: str = "auto", log: Callable[[str], None] = print) -> VividZooPipeline:
        """Vivid-ZOO from its files; with ``motion`` None, MVDream alone: multi-view images, each frame on its own."""
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        checkpoint = load_mvdream(mvdream)
        checkpoint.require_full()
        if motion is None:
            if alignment:
                raise VividZooError("alignment layers join motion modules to MVDream; give a motion module with them")
            modules, notices, names = None, [], {"mvdream": Path(mvdream).name}
        else:
            motion_checkpoint = load_motion_module(motion)
            alignment_checkpoint = load_alignment(alignment) if alignment else None
            notices = check_pairing(checkpoint.unet_shape, motion_checkpoint, alignment_checkpoint)
            modules = MotionModuleSet.from_checkpoint(motion_checkpoint)
            if alignment_checkpoint:
                modules.fold_alignment(alignment_checkpoint.weights)  # free at run time; same result
            else:
                modules.load_alignment(None)
            modules = modules.requires_grad_(False)
            names = {"mvdream": Path(mvdream).name, "motion_module": Path(motion).name,
                     "alignment": Path(alignment).name if alignment else "none (training-free)"}
        for notice in notices:
            log(f"note: {notice}")
        network = VividZooUNet(build_unet(checkpoint), modules).eval()
        tokenizer = clip_tokenizer(checkpoint.text_shape.kind)
        return cls(network.to(torch_device, torch_dtype), build_vae(checkpoint).to(torch_device, torch_dtype),
                   build_text_encoder(checkpoint).to(torch_device, torch_dtype), tokenizer, torch_device,
                   torch_dtype, notices, names)

    @property
    def max_frames(self) -> int:
        """Frames denoised together at most: the motion module's limit (without one, frames are independent)."""
        return self.network.motion.max_frames if self.network.motion is not None else FRAMES.high

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        return encode_text(self.tokenizer, self.text_encoder, prompts, self.device)

    def context_windows(self, settings: GenerationSettings) -> list[list[int]]:
        """Frames denoised together: all of them, or sliding windows (``settings.window_frames``)."""
        length = settings.window_frames(self.max_frames)
        if self.network.motion is not None:
            self.network.motion.check_frames(length)
        return frame_windows(settings.frames, length, min(settings.context_overlap, length - 1))

    @torch.no_grad()
    def generate(self, settings: GenerationSettings, cameras: CameraRig | None = None,
                 on_step: Callable[[int, int], None] = lambda step, total: None) -> MultiViewVideo:
        """Text to multi-view video: :meth:`denoise` (which checks the settings), then VAE decoding in chunks."""
        layout = VideoLayout(settings.views, settings.frames)
        rig = (cameras or settings.cameras()).for_layout(layout)
        latents = self.denoise(settings, rig, on_step)
        images = decode_latents(self.vae, latents)
        frames = images.permute(0, 2, 3, 1).reshape(layout.frames, layout.views, settings.height, settings.width, 3)
        info = {"generator": f"vividzoo {__version__}", **self.names, **asdict(settings)}
        return MultiViewVideo(frames, rig, settings.fps, info)

    @torch.no_grad()
    def denoise(self, settings: GenerationSettings, rig: CameraRig,
                on_step: Callable[[int, int], None] = lambda step, total: None) -> torch.Tensor:
        """DDIM with classifier-free guidance from seeded noise; returns the final latents (layout order)."""
        settings.check()
        layout = VideoLayout(settings.views, settings.frames)
        rig = rig.for_layout(layout)
        windows = self.context_windows(settings)
        check_fits(layout.views, max(map(len, windows)), settings.width, settings.height, self.dtype.itemsize,
                   self.memory_available(), where=f"on {self.device}")
        scheduler = ddim_scheduler(settings.beta_schedule)
        scheduler.set_timesteps(settings.steps)

        generator = torch.Generator().manual_seed(settings.seed)
        latent_shape = (layout.images, 4, settings.height // 8, settings.width // 8)
        latents = (torch.randn(latent_shape, generator=generator) * scheduler.init_noise_sigma).to(self.device)
        uncond, cond = self.encode_prompts([settings.negative, settings.prompt]).to(self.dtype).unbind(0)
        camera_input = rig.embedding_input().to(self.device, self.dtype)

        def predict(window_latents: torch.Tensor, window: list[int], timestep: torch.Tensor) -> torch.Tensor:
            window_layout = VideoLayout(layout.views, len(window))
            images = window_layout.images
            batch = torch.cat([window_latents, window_latents]).to(self.dtype)
            context = torch.cat([uncond.expand(images, -1, -1), cond.expand(images, -1, -1)])
            window_cameras = camera_input[layout.batch_indices(window, 1).to(self.device)]
            eps = self.network(batch, timestep, context, window_cameras.repeat(2, 1), window_layout).float()
            eps_uncond, eps_cond = eps.chunk(2)
            return eps_uncond + settings.cfg * (eps_cond - eps_uncond)

        for step, timestep in enumerate(scheduler.timesteps):
            eps = blend_windows(lambda x, window, t=timestep: predict(x, window, t), latents, layout, windows)
            latents = scheduler.step(eps, timestep, latents).prev_sample
            if not torch.isfinite(latents).all():
                raise VividZooError(
                    f"the latents became NaN/infinite at step {step + 1} of {settings.steps} "
                    f"(numeric overflow). Try --dtype bf16 or fp32, or a lower --cfg than {settings.cfg}"
                )
            on_step(step + 1, settings.steps)
        return latents

"""Standalone text-to-multi-view-video pipeline: DDIM with classifier-free guidance.

Everything is built from local files (MVDream checkpoint, motion module, optional alignment); no
Hub access. The negative branch uses the same cameras as the positive one, as in the paper.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from . import __version__
from .cameras import CameraRig, orbit
from .checkpoints import load_alignment, load_motion_module, load_mvdream
from .compat import check_pairing
from .context_windows import blend_windows, frame_windows
from .diffusers_host import (
    VividZooUNet, build_text_encoder, build_unet, build_vae, clip_tokenizer, decode_latents, encode_text,
)
from .errors import VividZooError
from .layout import VideoLayout
from .memory import available_bytes, check_fits
from .network import MotionModuleSet
from .schedules import PAPER_BETA_SCHEDULE, check_beta_schedule, ddim_scheduler
from .video import DEFAULT_FPS, MultiViewVideo

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DEFAULT_CONTEXT_OVERLAP = 4


@dataclass
class GenerationSettings:
    prompt: str
    negative: str = ""
    views: int = 4
    frames: int = 16
    width: int = 256
    height: int = 256
    steps: int = 50
    cfg: float = 7.5
    elevation: float = 15.0
    azimuth_start: float = 0.0
    seed: int = 0
    beta_schedule: str = PAPER_BETA_SCHEDULE
    context_frames: int | None = None
    """Frames per context window; default: all frames if the motion module takes them, else its limit."""
    context_overlap: int = DEFAULT_CONTEXT_OVERLAP
    fps: float = DEFAULT_FPS

    def check(self) -> None:
        VideoLayout(self.views, self.frames)
        for name in ("width", "height"):
            value = getattr(self, name)
            if value < 8 or value % 8:
                raise VividZooError(
                    f"{name} must be a positive multiple of 8 (the VAE works on 8x8 pixel blocks), got {value}; "
                    f"try {max(8, value // 8 * 8)} or {max(8, value // 8 * 8 + 8)}"
                )
        if self.steps < 1:
            raise VividZooError(f"steps must be at least 1, got {self.steps}")
        if self.cfg < 0:
            raise VividZooError(f"cfg must be 0 or more, got {self.cfg}")
        check_beta_schedule(self.beta_schedule)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``mps``, ``cuda`` or ``cuda:N``, checked against this machine."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    match = re.fullmatch(r"(cpu|mps|cuda)(?::(\d+))?", name)
    if match is None or (match[2] is not None and match[1] != "cuda"):
        raise VividZooError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    if match[1] == "cuda" and not torch.cuda.is_available():
        raise VividZooError(f"device {name!r} asked for, but PyTorch sees no CUDA GPU; use cpu or auto")
    if match[1] == "cuda" and match[2] is not None and int(match[2]) >= torch.cuda.device_count():
        raise VividZooError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} CUDA "
                            f"GPU(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if match[1] == "mps" and not torch.backends.mps.is_available():
        raise VividZooError("device 'mps' asked for, but PyTorch sees no Apple GPU; use cpu or auto")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise VividZooError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)} or auto")
    if name == "fp16" and device.type == "cpu":
        raise VividZooError("fp16 is not supported on the CPU by all PyTorch kernels; use fp32 or bf16 there")
    return DTYPES[name]


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
    def from_files(cls, mvdream: str | Path, motion: str | Path, alignment: str | Path | None = None,
                   device: str = "auto", dtype: str = "auto", log: Callable[[str], None] = print) -> "VividZooPipeline":
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        checkpoint = load_mvdream(mvdream)
        checkpoint.require_full()
        motion_checkpoint = load_motion_module(motion)
        alignment_checkpoint = load_alignment(alignment) if alignment else None
        notices = check_pairing(checkpoint.unet_shape, motion_checkpoint, alignment_checkpoint)
        for notice in notices:
            log(f"note: {notice}")
        modules = MotionModuleSet.from_checkpoint(motion_checkpoint)
        if alignment_checkpoint:
            modules.fold_alignment(alignment_checkpoint.weights)  # free at run time; same result
        else:
            modules.load_alignment(None)
        network = VividZooUNet(build_unet(checkpoint), modules.requires_grad_(False)).eval()
        tokenizer = clip_tokenizer(checkpoint.text_shape.kind)
        names = {"mvdream": Path(mvdream).name, "motion_module": Path(motion).name,
                 "alignment": Path(alignment).name if alignment else "none (training-free)"}
        return cls(network.to(torch_device, torch_dtype), build_vae(checkpoint).to(torch_device, torch_dtype),
                   build_text_encoder(checkpoint).to(torch_device, torch_dtype), tokenizer, torch_device,
                   torch_dtype, notices, names)

    @property
    def max_frames(self) -> int:
        return self.network.motion.max_frames

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        return encode_text(self.tokenizer, self.text_encoder, prompts, self.device)

    def context_windows(self, settings: GenerationSettings) -> list[list[int]]:
        length = settings.context_frames or settings.frames
        self.network.motion.check_frames(length)
        return frame_windows(settings.frames, length, min(settings.context_overlap, length - 1))

    @torch.no_grad()
    def generate(self, settings: GenerationSettings, cameras: CameraRig | None = None,
                 on_step: Callable[[int, int], None] = lambda step, total: None) -> MultiViewVideo:
        """Text to multi-view video: :meth:`denoise` (which checks the settings), then VAE decoding in chunks."""
        layout = VideoLayout(settings.views, settings.frames)
        rig = (cameras or orbit(settings.views, settings.elevation, settings.azimuth_start)).for_layout(layout)
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
            eps = blend_windows(lambda x, window: predict(x, window, timestep), latents, layout, windows)
            latents = scheduler.step(eps, timestep, latents).prev_sample
            if not torch.isfinite(latents).all():
                raise VividZooError(
                    f"the latents became NaN/infinite at step {step + 1} of {settings.steps} "
                    f"(numeric overflow). Try --dtype bf16 or fp32, or a lower --cfg than {settings.cfg}"
                )
            on_step(step + 1, settings.steps)
        return latents

"""Animate3D (MV-VDM): 4 condition views of a static object + a prompt -> a 4-view video, standalone.

Follows Animate3D's ``AnimateDiffMVI2VPipeline`` and ``inference.py``:

- The 4 condition images enter twice: CLIP image embeddings (one per view, through the IP-Adapter; the
  negative branch gets zero embeddings), and their VAE latents as frame 0 of every view, kept clean: after
  each DDIM step frame 0 is put back. The latents are a SAMPLE of the VAE posterior (``latent_dist.sample()``),
  and the images are resized with bilinear interpolation without antialiasing (torchvision on tensors).
- Cameras: the condition views' setup, 4 views at elevation 15 degrees, azimuths 0/90/180/270 in Animate3D's
  (threestudio's, z-up) convention, which is MVDream's / our orbit starting at azimuth 90.
- Sampling: DDIM, 25 steps, CFG 7.5, linear betas 0.00085-0.012, steps_offset 1, alpha 1 at the last step;
  FreeInit with 3 Butterworth iterations over the 15 generated frames.
- Randomness as the original with ``torch.manual_seed(seed)``: posterior noise ``(4, 4, h, w)`` first, then the
  latents ``(4 views, 4, frames - 1, h, w)``, then FreeInit's fresh noise, all from one generator.

Animate3D's batch is ``(guidance copy, view, frame)`` with frames innermost; ours is the layout of
:mod:`vividzoo_core.layout` (views innermost). Noise is drawn in the original's shape and reordered, so a seed
gives the original's sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from . import __version__
from .cameras import THREESTUDIO_AZIMUTH_OFFSET, CameraRig, orbit
from .checkpoints.animate3d import load_animate3d
from .checkpoints.clip_vision import load_clip_vision
from .checkpoints.ip_adapter import load_ip_adapter
from .checkpoints.mvdream import load_mvdream
from .devices import resolve_device, resolve_dtype
from .diffusers_host import (
    build_text_encoder,
    build_vae,
    clip_tokenizer,
    decode_latents,
    encode_text,
)
from .diffusers_host.animate3d import (
    Animate3DUNet,
    build_animate3d_unet,
    build_clip_vision,
)
from .errors import VividZooError
from .freeinit import butterworth_low_pass, reinitialise
from .layout import VideoLayout
from .memory import available_bytes, check_fits
from .pipeline import VividZooPipeline
from .schedules import MVDREAM_BETA_SCHEDULE, PAPER_BETA_SCHEDULE, ddim_scheduler
from .settings import CFG as CFG_SETTING
from .settings import (
    FPS,
    FREE_INIT_ITERATIONS,
    IP_SCALE,
    MOST_FRAMES_AT_ONCE,
    NEGATIVE,
    SEED,
    SETTINGS,
    WIDTH,
    random_seed,
)
from .settings import FRAMES as FRAMES_SETTING
from .video import MultiViewVideo

VIEWS = 4
ELEVATION = 15.0
"""Degrees: ``get_camera``'s default, and ``eval_elevation_deg`` of Animate3D's static 4-view renders."""
AZIMUTH_START = THREESTUDIO_AZIMUTH_OFFSET  # Animate3D's azimuth 0 (threestudio: from +x towards +y) is our 90
STEPS = 25
"""Animate3D's ``inference.yaml`` (the Vivid-ZOO paper samples 50)."""
BETA_SCHEDULE = PAPER_BETA_SCHEDULE
"""Animate3D's ``noise_scheduler_kwargs``: linear betas 0.00085 to 0.012, as AnimateDiff and the Vivid-ZOO paper."""
CFG = CFG_SETTING.default
FRAMES = FRAMES_SETTING.default
SIZE = WIDTH.default


def condition_cameras() -> CameraRig:
    """The 4 cameras Animate3D's condition views (and outputs) have: ``get_camera(4)`` of its pipeline."""
    return orbit(VIEWS, ELEVATION, AZIMUTH_START)


@dataclass
class Animate3DSettings:
    """One Animate3D video; limits (and defaults, but for Animate3D's 25 steps) from :mod:`vividzoo_core.settings`."""

    prompt: str
    negative: str = NEGATIVE.default
    frames: int = FRAMES
    """Frames of the video, the condition frame 0 included."""
    width: int = SIZE
    height: int = SIZE
    steps: int = STEPS
    cfg: float = CFG
    seed: int | None = SEED.default
    """None draws a random seed when the settings are made, so the saved settings can make the video again."""
    free_init_iterations: int = FREE_INIT_ITERATIONS.default
    ip_scale: float = IP_SCALE.default
    fps: float = FPS.default

    def __post_init__(self) -> None:
        if self.seed is None:
            self.seed = random_seed()

    def check(self, max_frames: int = MOST_FRAMES_AT_ONCE) -> None:
        """Refuses a value out of its table range, and a frame count Animate3D cannot make in one pass."""
        for field in fields(self):
            if field.name in SETTINGS:
                SETTINGS[field.name].check(getattr(self, field.name))
        if not 2 <= self.frames <= max_frames:
            raise VividZooError(f"frames must be 2 to {max_frames} (frame 0 is the condition views; Animate3D was "
                                f"trained with {FRAMES} and has no context windows), got {self.frames!r}")


def check_condition_images(images: Any, what: str = "condition images") -> torch.Tensor:
    """The 4 condition views as ``(4, H, W, 3)`` float in [0, 1] (ComfyUI's IMAGE layout).

    Takes a ``(N, H, W, C)`` tensor or array (float in [0, 1] or uint8) or a sequence of images (PIL, arrays,
    ``(H, W, C)`` tensors). Refuses another count than 4, different sizes and non-RGB(A) channels; an alpha
    channel is dropped, as ``PIL.Image.convert("RGB")`` does in the original.
    """
    if isinstance(images, (torch.Tensor, np.ndarray)) and np.ndim(images) == 4:
        views = list(torch.as_tensor(np.asarray(images) if isinstance(images, np.ndarray) else images))
    elif isinstance(images, Sequence) and not isinstance(images, (str, bytes)):
        views = [_as_tensor(image) for image in images]
    else:
        raise VividZooError(f"{what}: expected 4 images (a batch or a list), got {type(images).__name__}")
    if len(views) != VIEWS:
        raise VividZooError(f"{what}: Animate3D takes exactly {VIEWS} views of the object (front, left, back, right at "
                            f"{ELEVATION:g} degrees elevation), got {len(views)}")
    sizes = [tuple(view.shape) for view in views]
    if any(len(size) != 3 or size[-1] not in (3, 4) for size in sizes):
        raise VividZooError(f"{what}: expected RGB or RGBA images (H, W, 3 or 4), got shapes {sizes}")
    if len({size[:2] for size in sizes}) != 1:
        listed = ", ".join(f"{w}x{h}" for h, w, _ in sizes)
        raise VividZooError(f"{what}: the 4 views must have the same size, got {listed}; render or crop them alike")
    stacked = torch.stack(views)[..., :3]
    if stacked.dtype == torch.uint8:
        return stacked.float() / 255
    stacked = stacked.float()
    if stacked.min() < 0 or stacked.max() > 1:
        raise VividZooError(
            f"{what}: float pixel values must be in [0, 1], got {stacked.min():.3g} to {stacked.max():.3g}"
        )
    return stacked


def _as_tensor(image: Any) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        return image[0] if image.ndim == 4 and image.shape[0] == 1 else image
    return torch.from_numpy(np.array(image))


def resize_for_latents(images: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """``(4, H, W, 3)`` -> ``(4, 3, height, width)`` in [-1, 1], as the original's ``encode_latents``: torchvision
    ``Resize(height)`` on tensors (bilinear, no antialiasing) then ``Normalize(0.5, 0.5)``. The views' aspect
    ratio must be the video's (the original only works for square ones)."""
    _, h, w, _ = images.shape
    if h * width != w * height:
        raise VividZooError(f"the condition views are {w}x{h} but the video is {width}x{height}: the aspect ratios "
                            f"differ; crop the views to {width}:{height}")
    pixels = images.permute(0, 3, 1, 2)
    if (h, w) != (height, width):
        pixels = F.interpolate(pixels, size=(height, width), mode="bilinear", align_corners=False, antialias=False)
    return pixels * 2 - 1


def clip_pixels(images: torch.Tensor, size: int = 224) -> torch.Tensor:
    """CLIP's preprocessing as the original's ``CLIPImageProcessor()`` on 8-bit images (PIL bicubic resize of the
    short side, centre crop, CLIP mean/std): ``(4, 3, size, size)``."""
    try:
        from transformers import (
            CLIPImageProcessorPil as Processor,  # transformers 5: the PIL-backed processor
        )
    except ImportError:
        from transformers import CLIPImageProcessor as Processor
    processor = Processor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    eight_bit = (images * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    return processor(list(eight_bit), return_tensors="pt").pixel_values


def video_to_layout(latents: torch.Tensor) -> torch.Tensor:
    """Animate3D's ``(views, C, frames, h, w)`` -> our ``(frames * views, C, h, w)``."""
    return rearrange(latents, "v c f h w -> (f v) c h w")


def layout_to_video(latents: torch.Tensor, views: int = VIEWS) -> torch.Tensor:
    return rearrange(latents, "(f v) c h w -> v c f h w", v=views)


class Animate3DPipeline:
    def __init__(self, network: Animate3DUNet, vae, text_encoder, tokenizer, image_encoder, device: torch.device,
                 dtype: torch.dtype, names: dict[str, str]) -> None:
        self.network, self.vae, self.text_encoder, self.tokenizer = network, vae, text_encoder, tokenizer
        self.image_encoder = image_encoder
        self.device, self.dtype, self.names = device, dtype, names
        self.memory_available: Callable[[], int | None] = lambda: available_bytes(device)

    @classmethod
    def from_files(
        cls,
        mvdream: str | Path,
        animate3d: str | Path,
        clip_vision: str | Path,
        ip_adapter: str | Path | None = None,
        device: str = "auto",
        dtype: str = "auto",
    ) -> Animate3DPipeline:
        """MVDream (VAE, text encoder; its UNet unless ``animate3d`` is the whole-UNet form), the Animate3D file,
        the CLIP image encoder and (for the modules-only form) the IP-Adapter."""
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        mvdream_checkpoint = load_mvdream(mvdream)
        mvdream_checkpoint.require_full()
        animate3d_checkpoint = load_animate3d(animate3d)
        clip_checkpoint = load_clip_vision(clip_vision)
        whole_unet = animate3d_checkpoint.image_projection is not None  # holds the IP-Adapter, as the original loads it
        ip_checkpoint = load_ip_adapter(ip_adapter) if ip_adapter and not whole_unet else None
        network = build_animate3d_unet(mvdream_checkpoint, animate3d_checkpoint, ip_checkpoint, clip_checkpoint)
        ip_name = "in the UNet file" if whole_unet else Path(ip_adapter).name if ip_adapter else "none"
        names = {"mvdream": Path(mvdream).name, "animate3d": Path(animate3d).name,
                 "clip_vision": Path(clip_vision).name, "ip_adapter": ip_name}
        return cls(network.to(torch_device, torch_dtype), build_vae(mvdream_checkpoint).to(torch_device, torch_dtype),
                   build_text_encoder(mvdream_checkpoint).to(torch_device, torch_dtype),
                   clip_tokenizer(mvdream_checkpoint.text_shape.kind),
                   build_clip_vision(clip_checkpoint).to(torch_device, torch_dtype), torch_device, torch_dtype, names)

    @property
    def max_frames(self) -> int:
        return self.network.motion.max_frames

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """``(4, H, W, 3)`` -> ``(4, width)`` projected CLIP image embeddings."""
        pixels = clip_pixels(images, self.image_encoder.config.image_size)
        return self.image_encoder(pixels.to(self.device, self.dtype)).image_embeds.float()

    @torch.no_grad()
    def condition_latents(self, images: torch.Tensor, width: int, height: int, noise: torch.Tensor) -> torch.Tensor:
        """``(4, 4, h, w)`` scaled latents: the VAE posterior sampled with ``noise`` (``mean + std * noise``)."""
        pixels = resize_for_latents(images, width, height).to(self.device, self.dtype)
        posterior = self.vae.encode(pixels).latent_dist
        sample = posterior.mean.float() + posterior.std.float() * noise.to(self.device)
        return sample * self.vae.config.scaling_factor

    @torch.no_grad()
    def generate(self, settings: Animate3DSettings, images: Any,
                 on_step: Callable[[int, int], None] = lambda step, total: None) -> MultiViewVideo:
        """4 condition views + prompt -> a 4-view video whose frame 0 is the views re-encoded."""
        latents = self.denoise(settings, images, on_step)
        decoded = decode_latents(self.vae, latents)
        frames = decoded.permute(0, 2, 3, 1).reshape(settings.frames, VIEWS, settings.height, settings.width, 3)
        info = {"generator": f"vividzoo {__version__}", "model": "Animate3D", **self.names, **asdict(settings)}
        return MultiViewVideo(frames, condition_cameras().for_layout(VideoLayout(VIEWS, settings.frames)), settings.fps,
                              info, condition_views=check_condition_images(images))

    @torch.no_grad()
    def denoise(self, settings: Animate3DSettings, images: Any,
                on_step: Callable[[int, int], None] = lambda step, total: None) -> torch.Tensor:
        """The final latents ``(frames * 4, 4, h, w)`` in layout order."""
        settings.check(self.max_frames)
        views = check_condition_images(images)
        layout = VideoLayout(VIEWS, settings.frames)
        check_fits(VIEWS, settings.frames, settings.width, settings.height, self.dtype.itemsize,
                   self.memory_available(), where=f"on {self.device}", model="animate3d")
        h, w = settings.height // 8, settings.width // 8
        generator = torch.Generator().manual_seed(settings.seed)
        posterior_noise = torch.randn((VIEWS, 4, h, w), generator=generator)
        scheduler = ddim_scheduler(BETA_SCHEDULE, set_alpha_to_one=True)
        noise = torch.randn((VIEWS, 4, settings.frames - 1, h, w), generator=generator) * scheduler.init_noise_sigma
        image_embeds = self.image_embeddings(views)
        first = self.condition_latents(views, settings.width, settings.height, posterior_noise)
        uncond, cond = encode_text(self.tokenizer, self.text_encoder, [settings.negative, settings.prompt],
                                   self.device).to(self.dtype).unbind(0)
        self.network.ip_scale = settings.ip_scale
        step = Animate3DStep(self.network, uncond, cond, image_embeds, layout, settings.cfg)

        rest = noise.to(self.device)
        initial, low_pass = rest.clone(), butterworth_low_pass(settings.frames - 1, h, w)
        total = settings.steps * settings.free_init_iterations
        for iteration in range(settings.free_init_iterations):
            if iteration:
                rest = reinitialise(rest, initial, scheduler, generator, low_pass)
            scheduler.set_timesteps(settings.steps)
            for index, timestep in enumerate(scheduler.timesteps):
                rest = step(scheduler, timestep, first, rest)
                if not torch.isfinite(rest).all():
                    raise VividZooError(f"the latents became NaN/infinite at step {index + 1} (numeric overflow); "
                                        f"try dtype bf16 or fp32, or a lower cfg than {settings.cfg}")
                on_step(iteration * settings.steps + index + 1, total)
        return video_to_layout(torch.cat([first[:, :, None].to(rest), rest], dim=2))


class Animate3DStep:
    """One guided DDIM step with the clean first frame, on latents in Animate3D's ``(views, C, frames, h, w)`` order."""

    def __init__(self, network: Animate3DUNet, uncond: torch.Tensor, cond: torch.Tensor, image_embeds: torch.Tensor,
                 layout: VideoLayout, cfg: float) -> None:
        self.network, self.layout, self.cfg = network, layout, cfg
        images = layout.images
        dtype = next(network.parameters()).dtype
        self.context = torch.cat([uncond.expand(images, -1, -1), cond.expand(images, -1, -1)]).to(dtype)
        per_image = image_embeds[torch.arange(images) % layout.views]  # view v's embedding at (f, v)
        self.image_embeds = torch.cat([torch.zeros_like(per_image), per_image]).to(dtype)
        self.cameras = condition_cameras().for_layout(layout).embedding_input().repeat(2, 1).to(self.context)

    def noise_prediction(self, latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """Guided noise for ``latents`` ``(frames * views, C, h, w)`` in layout order."""
        batch = torch.cat([latents, latents]).to(self.context.dtype)
        eps = self.network(batch, timestep, self.context, self.cameras.to(batch.device), self.layout,
                           self.image_embeds.to(batch.device)).float()
        eps_uncond, eps_cond = eps.chunk(2)
        return eps_uncond + self.cfg * (eps_cond - eps_uncond)

    def __call__(self, scheduler, timestep: torch.Tensor, first: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
        """The generated frames after one step; frame 0 stays the clean condition latents."""
        latents = video_to_layout(torch.cat([first[:, :, None].to(rest), rest], dim=2))
        stepped = scheduler.step(self.noise_prediction(latents, timestep), timestep, latents).prev_sample
        return layout_to_video(stepped)[:, :, 1:]


@dataclass
class Animate3DWithViews:
    """Animate3D bound to the 4 condition views of one object: prompts in, videos out (for ``generate_prompts``)."""

    pipeline: Animate3DPipeline
    views: torch.Tensor

    def generate(self, settings: Animate3DSettings, cameras: CameraRig | None = None,
                 on_step: Callable[[int, int], None] = lambda step, total: None) -> MultiViewVideo:
        if cameras is not None:
            raise VividZooError("Animate3D's cameras are fixed (its condition views' setup); leave cameras out")
        return self.pipeline.generate(settings, self.views, on_step)


@dataclass
class MVDreamViewsThenAnimate3D:
    """Text -> MVDream's 4 views at Animate3D's condition cameras -> Animate3D: released trained weights only.

    MVDream (``views`` is a :class:`VividZooPipeline` without motion modules) samples the views with the same
    prompt, seed, size, steps and guidance, on the schedule it trained with; Animate3D then animates them.
    """

    views: VividZooPipeline
    pipeline: Animate3DPipeline

    def generate(self, settings: Animate3DSettings, cameras: CameraRig | None = None,
                 on_step: Callable[[int, int], None] = lambda step, total: None) -> MultiViewVideo:
        from .settings import GenerationSettings

        if cameras is not None:
            raise VividZooError("Animate3D's cameras are fixed (its condition views' setup); leave cameras out")
        view_settings = GenerationSettings(
            settings.prompt, settings.negative, views=VIEWS, frames=1, width=settings.width, height=settings.height,
            steps=settings.steps, cfg=settings.cfg, elevation=ELEVATION, azimuth_start=AZIMUTH_START,
            seed=settings.seed, beta_schedule=MVDREAM_BETA_SCHEDULE)
        views = self.views.generate(view_settings, condition_cameras(), on_step).frames[0]
        video = self.pipeline.generate(settings, views, on_step)
        video.info["condition_views"] = {"made_by": "MVDream, from the prompt", **asdict(view_settings)}
        return video

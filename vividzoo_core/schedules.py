"""Noise schedules: the paper's and MVDream's, named as diffusers names them.

- ``linear``: betas spaced linearly from 0.00085 to 0.012 (AnimateDiff's training config, and the
  Vivid-ZOO paper's table). ComfyUI and AnimateDiff-Evolved call this ``sqrt_linear``.
- ``scaled_linear``: linear in sqrt(beta) (LDM's "linear", what SD 1.5 and MVDream trained with).
"""

from __future__ import annotations

import torch

from .errors import VividZooError

BETA_SCHEDULES = ("linear", "scaled_linear")
PAPER_BETA_SCHEDULE = "linear"
MVDREAM_BETA_SCHEDULE = "scaled_linear"
"""What MVDream trained with: its multi-view images (without motion modules) are sampled on it."""
TRAIN_TIMESTEPS = 1000
BETA_START = 0.00085
BETA_END = 0.012


def make_betas(schedule: str = PAPER_BETA_SCHEDULE, timesteps: int = TRAIN_TIMESTEPS) -> torch.Tensor:
    """float64 betas of ``schedule``."""
    check_beta_schedule(schedule)
    if schedule == "linear":
        return torch.linspace(BETA_START, BETA_END, timesteps, dtype=torch.float64)
    return torch.linspace(BETA_START**0.5, BETA_END**0.5, timesteps, dtype=torch.float64) ** 2


def check_beta_schedule(schedule: str) -> None:
    if schedule not in BETA_SCHEDULES:
        raise VividZooError(
            f"unknown beta schedule {schedule!r}; use 'linear' (Vivid-ZOO paper, AnimateDiff) or "
            f"'scaled_linear' (MVDream, Stable Diffusion)"
        )


def ddim_scheduler(schedule: str = PAPER_BETA_SCHEDULE, set_alpha_to_one: bool = False):
    """The paper's DDIM scheduler (1000 steps, steps_offset 1, no sample clipping).

    ``set_alpha_to_one``: the last step goes to alpha 1 (a clean sample) instead of ``alphas_cumprod[0]``;
    diffusers' default, and so Animate3D's, whose config does not set it.
    """
    from diffusers import DDIMScheduler

    check_beta_schedule(schedule)
    return DDIMScheduler(
        num_train_timesteps=TRAIN_TIMESTEPS,
        beta_start=BETA_START,
        beta_end=BETA_END,
        beta_schedule=schedule,
        clip_sample=False,
        set_alpha_to_one=set_alpha_to_one,
        steps_offset=1,
        prediction_type="epsilon",
        timestep_spacing="leading",
    )

"""The denoising loop's math against hand-written references: guidance direction, the noise schedule
that DDIM really uses, and the pyramid blend of overlapping context windows.

A stub network stands in for the UNet: its prediction is a known function of the latents, the
prompt embedding and the cameras, so every number the loop produces can be computed by hand.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vividzoo_core.cameras import orbit
from vividzoo_core.context_windows import blend_windows, frame_windows, window_weights
from vividzoo_core.errors import VividZooError
from vividzoo_core.layout import VideoLayout
from vividzoo_core.pipeline import VividZooPipeline
from vividzoo_core.schedules import ddim_scheduler, make_betas
from vividzoo_core.settings import GenerationSettings

UNCOND_LEVEL, COND_LEVEL = -0.5, 0.75
"""What the stub text encoder returns for the negative and the positive prompt."""


class StubMotion:
    max_frames = 8

    def check_frames(self, frames: int) -> None:
        assert frames <= self.max_frames


class StubNetwork(nn.Module):
    """``eps = 0.5 * tanh(x) + context level + camera x-position``: cond and uncond differ by a known amount."""

    def __init__(self) -> None:
        super().__init__()
        self.motion = StubMotion()
        self.calls: list[tuple[int, int]] = []

    def forward(self, x, timestep, context, cameras, layout):
        assert x.shape[0] == context.shape[0] == cameras.shape[0]
        self.calls.append((layout.frames, x.shape[0]))
        return stub_eps(x, context[:, 0, 0], cameras)


def stub_eps(x: torch.Tensor, level: torch.Tensor, cameras: torch.Tensor) -> torch.Tensor:
    per_image = level + cameras[:, 3]  # row-major 4x4: entry 3 is the camera's x position
    return 0.5 * torch.tanh(x) + per_image.view(-1, 1, 1, 1)


class StubPipeline(VividZooPipeline):
    def __init__(self) -> None:
        super().__init__(StubNetwork(), None, None, None, torch.device("cpu"), torch.float32, [], {})

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        assert prompts == ["", "a prompt"]  # negative first
        return torch.tensor([UNCOND_LEVEL, COND_LEVEL]).view(2, 1, 1).expand(2, 3, 5).clone()


def reference_ddim(settings: GenerationSettings, betas: torch.Tensor) -> torch.Tensor:
    """DDIM (eta 0) with "leading" timesteps, steps_offset 1 and alpha_prev(t<0) = alpha_bar[0], written out."""
    layout = VideoLayout(settings.views, settings.frames)
    alpha_bar = torch.cumprod(1 - betas, 0)
    ratio = 1000 // settings.steps
    timesteps = [i * ratio + 1 for i in reversed(range(settings.steps))]
    x = torch.randn((layout.images, 4, settings.height // 8, settings.width // 8),
                    generator=torch.Generator().manual_seed(settings.seed)).double()
    cameras = orbit(settings.views, settings.elevation, settings.azimuth_start).for_layout(layout).embedding_input()
    camera_x = cameras[:, 3].double().view(-1, 1, 1, 1)
    for t in timesteps:
        eps_uncond = 0.5 * torch.tanh(x) + UNCOND_LEVEL + camera_x
        eps_cond = 0.5 * torch.tanh(x) + COND_LEVEL + camera_x
        eps = eps_uncond + settings.cfg * (eps_cond - eps_uncond)
        a_t = alpha_bar[t]
        a_prev = alpha_bar[t - ratio] if t - ratio >= 0 else alpha_bar[0]
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x.float()


def settings(**changes) -> GenerationSettings:
    return GenerationSettings(**{"prompt": "a prompt", "views": 2, "frames": 3, "width": 16, "height": 16,
                                 "steps": 3, "cfg": 4.0, "elevation": 10.0, "azimuth_start": 30.0, "seed": 7,
                                 **changes})


def denoise(pipeline: VividZooPipeline, generation: GenerationSettings) -> torch.Tensor:
    rig = orbit(generation.views, generation.elevation, generation.azimuth_start)
    return pipeline.denoise(generation, rig)


# The loops below run the stub and DDIM in float32, elementwise (no sums, so no kernel-dependent order), against a
# float64 reference: 3 steps x about 10 roundings x 2^-24 x latents below 5 = 9e-6, under atol 2e-5 on any CPU.


@pytest.mark.parametrize("cfg", [0.0, 1.0, 4.0])
def test_guidance_is_uncond_plus_cfg_times_cond_minus_uncond(cfg):
    generation = settings(cfg=cfg)
    expected = reference_ddim(generation, make_betas("linear"))
    torch.testing.assert_close(denoise(StubPipeline(), generation), expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear"])
def test_denoising_uses_the_asked_beta_schedule(schedule):
    generation = settings(beta_schedule=schedule)
    result = denoise(StubPipeline(), generation)
    torch.testing.assert_close(result, reference_ddim(generation, make_betas(schedule)), atol=2e-5, rtol=1e-5)
    other = "scaled_linear" if schedule == "linear" else "linear"
    assert (result - reference_ddim(generation, make_betas(other))).abs().max() > 1e-2


def test_paper_schedule_is_linear_in_beta_from_0_00085_to_0_012():
    betas = make_betas()
    assert betas.shape == (1000,) and betas.dtype == torch.float64
    assert betas[0].item() == pytest.approx(0.00085) and betas[-1].item() == pytest.approx(0.012)
    torch.testing.assert_close(betas[1:] - betas[:-1], torch.full((999,), (0.012 - 0.00085) / 999, dtype=torch.float64))
    scaled = make_betas("scaled_linear")
    torch.testing.assert_close(scaled.sqrt()[[0, -1]], torch.tensor([0.00085, 0.012], dtype=torch.float64).sqrt())
    torch.testing.assert_close(
        scaled[500],
        torch.tensor(
            (math.sqrt(0.00085) + 500 * (math.sqrt(0.012) - math.sqrt(0.00085)) / 999) ** 2, dtype=torch.float64
        ),
    )
    with pytest.raises(VividZooError, match="unknown beta schedule 'cosine'"):
        make_betas("cosine")


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear"])
def test_the_ddim_scheduler_carries_the_same_betas(schedule):
    scheduler = ddim_scheduler(schedule)
    torch.testing.assert_close(scheduler.betas.double(), make_betas(schedule), atol=1e-9, rtol=1e-6)
    config = scheduler.config
    assert (config.prediction_type, config.clip_sample, config.set_alpha_to_one, config.steps_offset) == (
        "epsilon",
        False,
        False,
        1,
    )


def test_context_windows_in_the_loop_match_a_single_window_for_a_per_image_predictor():
    # The stub's prediction depends on each image alone, so any correct blend of windows gives the
    # same latents as one window over all frames; a window that mixes up images does not.
    generation = settings(frames=7, context_frames=3, context_overlap=1)
    pipeline = StubPipeline()
    windowed = denoise(pipeline, generation)
    assert {frames for frames, _ in pipeline.network.calls} == {3}
    torch.testing.assert_close(windowed, reference_ddim(generation, make_betas("linear")), atol=2e-5, rtol=1e-5)


# -- context windows: the pyramid blend -----------------------------------------------------------

# frame_windows(6, 4, 2) = [0..3], [2..5]; pyramid weights [1, 2, 2, 1]. A predictor adding its
# window's first frame: frames 0-1 only see window 0 (+0), frames 4-5 only window 1 (+2), frame 2
# is at weight 2 in window 0 and 1 in window 1: (2*0 + 1*2) / 3; frame 3: (1*0 + 2*2) / 3.
BLENDED_OFFSETS = [0.0, 0.0, 2 / 3, 4 / 3, 2.0, 2.0]


def nonlinear_predictor(part: torch.Tensor, window: list[int]) -> torch.Tensor:
    return part**2 + window[0]


def test_frame_windows_and_pyramid_weights():
    assert frame_windows(6, 4, 2) == [[0, 1, 2, 3], [2, 3, 4, 5]]
    assert frame_windows(10, 4, 1) == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert frame_windows(9, 4, 1) == [[0, 1, 2, 3], [3, 4, 5, 6], [5, 6, 7, 8]]  # last window ends at the end
    assert frame_windows(4, 4, 2) == [[0, 1, 2, 3]]
    assert frame_windows(3, 1, 0) == [[0], [1], [2]]  # the shortest window, no overlap
    assert frame_windows(4, 2, 0) == [[0, 1], [2, 3]]
    assert window_weights(5).tolist() == [1, 2, 3, 2, 1]
    assert window_weights(1).tolist() == [1]
    for length, overlap in [(0, 0), (4, 4), (4, -1)]:
        with pytest.raises(VividZooError, match="context windows need"):
            frame_windows(8, length, overlap)


@pytest.mark.parametrize("copies", [1, 2])
def test_overlapping_windows_blend_with_pyramid_weights(copies):
    layout = VideoLayout(views=3, frames=6)
    x = torch.randn(copies * layout.images, 2, 2, 2)
    blended = blend_windows(nonlinear_predictor, x, layout, frame_windows(6, 4, 2))
    offsets = torch.tensor(BLENDED_OFFSETS).repeat_interleave(layout.views).repeat(copies)
    torch.testing.assert_close(blended, x**2 + offsets.view(-1, 1, 1, 1))
    as_double = blend_windows(nonlinear_predictor, x.double(), layout, frame_windows(6, 4, 2))
    assert as_double.dtype == torch.float64  # blended in float32, handed back in the latents' dtype


def test_uncovered_frames_are_refused():
    layout = VideoLayout(views=2, frames=5)
    with pytest.raises(VividZooError, match="uncovered"):
        blend_windows(nonlinear_predictor, torch.zeros(layout.images, 1), layout, [[0, 1], [1, 2]])
    with pytest.raises(VividZooError, match="uncovered"):
        blend_windows(nonlinear_predictor, torch.zeros(layout.images, 1), layout, [[0, 1]])

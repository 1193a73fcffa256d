"""The standalone Animate3D pipeline end to end on tiny random files: a 4-view video with Animate3D's cameras."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vividzoo_core import animate3d_pipeline
from vividzoo_core.animate3d_pipeline import Animate3DPipeline, Animate3DSettings
from vividzoo_core.errors import VividZooError
from vividzoo_core.synthetic_weights import (
    synthetic_condition_views,
    write_animate3d_test_weights,
)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    files = write_animate3d_test_weights(tmp_path_factory.mktemp("animate3d_pipeline"))
    return Animate3DPipeline.from_files(files.mvdream, files.full, files.clip_vision, device="cpu", dtype="fp32")


def test_generate_gives_a_four_view_video_with_the_condition_cameras(pipeline):
    settings = Animate3DSettings("a dragon roars", frames=3, width=64, height=64, steps=2, free_init_iterations=1)
    video = pipeline.generate(settings, synthetic_condition_views(128))
    assert video.frames.shape == (3, 4, 64, 64, 3) and torch.isfinite(video.frames).all()
    assert video.cameras.frames == 3 and video.cameras.elevations[0].tolist() == [15.0] * 4
    assert video.info["model"] == "Animate3D" and video.info["ip_adapter"] == "in the UNet file"


def test_the_same_seed_gives_the_same_video_and_another_seed_another(pipeline):
    views = synthetic_condition_views(64)
    run = [pipeline.denoise(Animate3DSettings("x", frames=2, width=64, height=64, steps=1, seed=seed,
                                              free_init_iterations=1), views) for seed in (1, 1, 2)]
    assert torch.equal(run[0], run[1]) and not torch.equal(run[0], run[2])


@pytest.mark.parametrize("change, match", [
    ({"frames": 1}, "frames must be 2 to 32"), ({"frames": 33}, "frames must be 2 to 32"),
    ({"width": 60}, "multiple of 8"), ({"steps": 0}, "steps"), ({"free_init_iterations": 0}, "free_init_iterations"),
])
def test_bad_settings_are_refused_before_any_work(pipeline, change, match):
    settings = Animate3DSettings("x", **change)
    with pytest.raises(VividZooError, match=match):
        pipeline.denoise(settings, synthetic_condition_views(64))


def test_a_run_steps_with_the_originals_noise_levels(pipeline, monkeypatch):
    """The scheduler a run steps with has the alphas of Animate3D's inference.yaml (as recorded from the original):
    betas spaced linearly from beta_start to beta_end, not their square roots (MVDream's and SD's schedule)."""
    recorded = json.loads((Path(__file__).parent / "data" / "animate3d" / "meta.json").read_text())["scheduler"]
    assert recorded["beta_schedule"] == "linear"  # diffusers' name: torch.linspace(beta_start, beta_end, steps)

    class Stop(Exception):
        pass

    used = []

    def first_step(self, scheduler, timestep, first, rest):
        used.append(scheduler)
        raise Stop

    monkeypatch.setattr(animate3d_pipeline.Animate3DStep, "__call__", first_step)
    with pytest.raises(Stop):
        pipeline.denoise(Animate3DSettings("x", frames=2, width=64, height=64, free_init_iterations=1),
                         synthetic_condition_views(64))
    betas = torch.linspace(recorded["beta_start"], recorded["beta_end"], recorded["num_train_timesteps"],
                           dtype=torch.float64)
    expected = torch.cumprod(1 - betas, 0)
    # float32 cumulative product of 1000 factors: at most ~1000 roundings of 2^-24 each, 6e-5 relative
    assert torch.allclose(used[0].alphas_cumprod.double(), expected, rtol=1e-4, atol=0)
    assert used[0].timesteps.tolist() == recorded["timesteps_25"] and float(used[0].final_alpha_cumprod) == 1.0

"""The standalone Animate3D pipeline end to end on tiny random files: a 4-view video with Animate3D's cameras."""

from __future__ import annotations

import pytest
import torch

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

"""The memory formula agrees with a trace of the full-size network, and the tracer counts correctly."""

from __future__ import annotations

import re

import pytest
import torch
from diffusers import UNet2DConditionModel

from vividzoo_core import memory
from vividzoo_core.cli import main
from vividzoo_core.compat import expected_motion_channels
from vividzoo_core.diffusers_host import VividZooUNet
from vividzoo_core.diffusers_host.unet import unet_config
from vividzoo_core.errors import VividZooError
from vividzoo_core.layout import VideoLayout
from vividzoo_core.memory import (
    ACTIVATION_BYTES_PER_LATENT_PIXEL_FP16,
    WEIGHT_BYTES_FP16,
    LiveTensorBytes,
    check_fits,
    describe_estimate,
    estimate_gb,
    flash_attention_model,
)
from vividzoo_core.network import MotionModuleSet
from vividzoo_core.pipeline import VividZooPipeline
from vividzoo_core.settings import GenerationSettings
from vividzoo_core.synthetic_weights import FULL_SD15


def test_tracer_counts_live_storages_once():
    with LiveTensorBytes() as trace:
        a = torch.empty(1000, device="meta")  # 4 kB
        b = a.view(10, 100)  # a view: same storage
        c = torch.empty(500, device="meta")  # 2 kB more
        del a, b, c
        d = torch.empty(250, device="meta")
    assert trace.peak == 6000 and trace.now == 1000
    del d


@pytest.mark.parametrize("views, frames, size", [(4, 4, 256), (2, 6, 128)])
def test_formula_matches_a_trace_of_the_full_size_network(views, frames, size):
    shape = FULL_SD15.unet
    with torch.device("meta"):
        network = VividZooUNet(UNet2DConditionModel(**unet_config(shape)),
                               MotionModuleSet(expected_motion_channels(shape), 32, "v2")).half()
    layout, latent = VideoLayout(views, frames), size // 8
    batch = 2 * layout.images
    weights = sum(p.numel() * 2 for p in network.parameters())
    assert weights == pytest.approx(WEIGHT_BYTES_FP16, rel=0.01)
    with torch.no_grad(), flash_attention_model(), LiveTensorBytes() as trace:
        network(torch.empty(batch, 4, latent, latent, device="meta", dtype=torch.half), torch.tensor(1, device="meta"),
                torch.empty(batch, 77, 768, device="meta", dtype=torch.half),
                torch.empty(batch, 16, device="meta", dtype=torch.half), layout)
    assert trace.peak == pytest.approx(ACTIVATION_BYTES_PER_LATENT_PIXEL_FP16 * batch * latent * latent, rel=0.05)
    low, high = estimate_gb(views, frames, size, size)
    assert low < high and low * 1024**3 > weights + trace.peak


def test_the_papers_setting_fits_in_10_gb_by_estimate():
    assert estimate_gb(4, 16, 256, 256)[1] < 10


GB = 1024**3


@pytest.mark.parametrize("views, frames, bytes_per_value", [(4, 16, 2), (2, 8, 4)])
def test_the_largest_size_and_frame_count_offered_do_fit(views, frames, bytes_per_value):
    available = 3 * GB
    with pytest.raises(VividZooError) as refused:
        check_fits(views, frames, 1024, 1024, bytes_per_value, available)
    message = str(refused.value)
    size = int(re.search(r"at most (\d+)x\1 px", message)[1])
    most_frames = int(re.search(r"at most (\d+) frames at once", message)[1])
    check_fits(views, frames, size, size, bytes_per_value, available)
    with pytest.raises(VividZooError):
        check_fits(views, frames, size + 8, size + 8, bytes_per_value, available)
    check_fits(views, most_frames, 1024, 1024, bytes_per_value, available)
    with pytest.raises(VividZooError):
        check_fits(views, most_frames + 1, 1024, 1024, bytes_per_value, available)
    # The check uses the estimate's low end without the CUDA context and the weights (already loaded).
    weights_gb = 1.2 * bytes_per_value / 2 * WEIGHT_BYTES_FP16 / GB
    expected = estimate_gb(views, frames, 1024, 1024, bytes_per_value)[0] - 0.5 - weights_gb
    assert float(re.search(r"needs at least about ([\d.]+) GB", message)[1]) == pytest.approx(expected, abs=0.06)


def test_unknown_free_memory_is_not_refused():
    check_fits(64, 64, 2048, 2048, 4, None)


def test_the_pipeline_refuses_before_the_first_step(weights):
    pipeline = VividZooPipeline.from_files(weights.mvdream, weights.motion["v2"], None, "cpu", log=lambda m: None)
    steps = []
    pipeline.memory_available = lambda: 10 * 1024**2
    with pytest.raises(VividZooError, match=r"4 views x 8 frames x 64x64 px needs at least about .* GB on cpu .*"
                                            r"only 0.0 GB is free; fits: at most \d+x\d+ px at 8 frames"):
        pipeline.generate(GenerationSettings("x", views=4, frames=8, width=64, height=64, steps=2),
                          on_step=lambda step, total: steps.append(step))
    assert steps == []
    pipeline.memory_available = lambda: 64 * GB
    assert (
        pipeline.generate(GenerationSettings("x", views=1, frames=2, width=16, height=16, steps=1)).frames.shape[0] == 2
    )


def test_the_cli_refuses_before_sampling(weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(memory, "available_ram", lambda: 2 * GB)
    code = main(["generate", "--mvdream", str(weights.mvdream), "--motion", str(weights.motion["v2"]), "--prompt",
                 "x", "--device", "cpu", "--size", "512", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    error = captured.err.strip().splitlines()[-1]
    assert code == 2 and error.startswith("error: 4 views x 16 frames x 512x512 px needs at least about")
    assert "only 2.0 GB is free" in error and "Traceback" not in captured.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("size", [64, 256])
def test_the_described_range_has_two_different_ends(size):
    low, high = estimate_gb(1, 1, size, size)
    text = describe_estimate(1, 1, size, size)
    assert text == f"{low:.1f} to {high:.1f} GB"
    assert text.split(" to ")[0] != text.split(" to ")[1].removesuffix(" GB")  # never "about 4-4 GB"

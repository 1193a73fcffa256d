"""The memory formula agrees with a trace of the full-size network, and the tracer counts correctly."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel

from vividzoo_core.compat import expected_motion_channels
from vividzoo_core.diffusers_host import VividZooUNet
from vividzoo_core.diffusers_host.unet import unet_config
from vividzoo_core.layout import VideoLayout
from vividzoo_core.memory import (
    ACTIVATION_BYTES_PER_LATENT_PIXEL_FP16, WEIGHT_BYTES_FP16, LiveTensorBytes, describe_estimate, estimate_gb,
    flash_attention_model,
)
from vividzoo_core.network import MotionModuleSet
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


@pytest.mark.parametrize("size", [64, 256])
def test_the_described_range_has_two_different_ends(size):
    low, high = estimate_gb(1, 1, size, size)
    text = describe_estimate(1, 1, size, size)
    assert text == f"{low:.1f} to {high:.1f} GB"
    assert text.split(" to ")[0] != text.split(" to ")[1].removesuffix(" GB")  # never "about 4-4 GB"

"""Our LGM / L4GM / interpolation forward equals the ORIGINAL code's Gaussians (tests/reference/record_lgm.py).

Same tiny random weights (regenerated here; their checksums are in meta.json), same inputs (regenerated from the
seeds), the originals' preprocessing, default rays and activations against ours.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vividzoo_core.checkpoints.reconstruction import L4GM, L4GM_INTERP, LGM, TINY, lgm_key_shapes, load_reconstruction
from vividzoo_core.lgm_cameras import plucker_rays, trained_poses
from vividzoo_core.network.lgm import LGMNetwork, build_network
from vividzoo_core.network.lgm_inputs import interpolation_views, l4gm_views, model_input
from vividzoo_core.synthetic_reconstruction_weights import lgm_state_dict, write_lgm_test_weights

DATA = Path(__file__).parent / "data" / "lgm"
FIXTURES = load_file(str(DATA / "fixtures.safetensors"))
META = json.loads((DATA / "meta.json").read_text())
SEED, SIZE, FRAMES, STRIDE = META["seed"], META["size"], META["frames"], META["stride"]

UNIT_ROUNDOFF = 2.0**-24


def tolerance(temporal: bool, largest: float) -> float:
    """Float32 rounding of two correct implementations that order their sums differently (e.g. AVX2 vs AVX-512
    kernels, our fused attention vs the original's matmuls): each layer adds a relative error of about
    ``u * sqrt(K)`` (``K``: its longest dot product), and errors of independent layers add like a random walk over
    the layers, through normalisations and activations of gain at most about 1. So
    ``u * sqrt(K_max) * sqrt(layers) * largest``; for the tiny network about 3e-5 of the largest value."""
    from dataclasses import replace

    shapes = lgm_key_shapes(replace(TINY, temporal=temporal))
    reduction = max(math.prod(s[1:]) for s in shapes.values() if len(s) > 1)
    layers = sum(len(s) > 1 for s in shapes.values())
    return UNIT_ROUNDOFF * math.sqrt(reduction) * math.sqrt(layers) * largest


def video(frames: int, size: int, seed: int) -> torch.Tensor:
    """The harness's multi-view video, ``[frames, 4, 3, size, size]`` in [0, 1] (uint8 / 255 as the originals)."""
    generator = torch.Generator().manual_seed(seed)
    clip = torch.randint(0, 256, (frames, 4, size, size, 3), generator=generator, dtype=torch.uint8)
    return clip.permute(0, 1, 4, 2, 3).float() / 255.0


@pytest.fixture(scope="module")
def networks(tmp_path_factory) -> dict[str, LGMNetwork]:
    files = write_lgm_test_weights(tmp_path_factory.mktemp("lgm"))
    return {kind: build_network(load_reconstruction(path, kind)) for kind, path in files.items()}


def assert_equal_to_original(ours: torch.Tensor, theirs: torch.Tensor, temporal: bool) -> float:
    largest = theirs.abs().max().item()
    difference = (ours - theirs).abs().max().item()
    assert difference <= tolerance(temporal, largest), (difference, tolerance(temporal, largest))
    return difference


@pytest.mark.parametrize("kind", [LGM, L4GM, L4GM_INTERP])
def test_regenerated_weights_are_the_recorded_ones(kind):
    """Checksums within what a last-bit difference of every float32 value could move them (another CPU's
    vectorised random-number kernel): sum by at most ``u * sum|x| <= u * sqrt(n * sum x^2)``, squares by ``2u``."""
    tensors = list(lgm_state_dict(kind).values())
    count = sum(t.numel() for t in tensors)
    total = sum(float(t.double().sum()) for t in tensors)
    squares = sum(float((t.double() ** 2).sum()) for t in tensors)
    assert total == pytest.approx(META["weight_checksums"][kind][0], rel=0,
                                  abs=UNIT_ROUNDOFF * math.sqrt(count * squares))
    assert squares == pytest.approx(META["weight_checksums"][kind][1], rel=2 * UNIT_ROUNDOFF)


@pytest.mark.parametrize("name,size", [("lgm_64", SIZE), ("lgm_256", 256)])
def test_lgm_gaussians_equal_the_original(networks, name, size):
    """infer.py: the 4 views of one frame, default rays, forward_gaussians."""
    images = video(1, size, SEED)
    with torch.no_grad():
        gaussians = networks[LGM](model_input(images, plucker_rays(trained_poses(), size), size))
    assert gaussians.shape == (1, 1, META[f"{name}_gaussians"][0], 14)
    assert_equal_to_original(gaussians[0, 0, :: STRIDE[name]], FIXTURES[f"{name}.gaussians"], temporal=False)


def test_l4gm_gaussians_equal_the_original(networks):
    """infer_4d.py: view 0 of every frame, views 1-3 of frame 0, temporal attention over the frames."""
    images = l4gm_views(video(FRAMES, SIZE, SEED + 1))
    with torch.no_grad():
        gaussians = networks[L4GM](model_input(images, plucker_rays(trained_poses(), SIZE)[None], SIZE))
    assert list(gaussians.shape[1:]) == META["l4gm_gaussians"][0]
    assert_equal_to_original(gaussians[0, :, :: STRIDE["l4gm"]], FIXTURES["l4gm.gaussians"], temporal=True)


def test_interpolation_gaussians_equal_the_original(networks):
    """infer_4d.py's interpolation step: frames a and b, two lerp-initialised frames between, the 4-frame model."""
    ends = video(2, SIZE, SEED + 2)
    views = interpolation_views(ends[0], ends[1])
    torch.testing.assert_close(views.permute(0, 1, 3, 4, 2)[:, :, ::8, ::8], FIXTURES["interp.views"],
                               rtol=0, atol=2 * UNIT_ROUNDOFF)  # lerp: one rounding either way
    with torch.no_grad():
        gaussians = networks[L4GM_INTERP](model_input(views, plucker_rays(trained_poses(), SIZE)[None], SIZE))
    assert_equal_to_original(gaussians[0, :, :: STRIDE["interp"]], FIXTURES["interp.gaussians"], temporal=True)


def test_the_fixture_exercises_every_activation(networks):
    """Positions both inside and on the clamp, the other columns away from their limits: a wrong activation shows."""
    fixture = FIXTURES["lgm_64.gaussians"]
    clamped = (fixture[:, 0:3].abs() == 1).float().mean().item()
    assert 0.005 < clamped < 0.5
    assert torch.allclose(fixture[:, 7:11].norm(dim=-1), torch.ones(len(fixture)), atol=1e-6)
    assert 0 < fixture[:, 4:7].min() and fixture[:, 4:7].max() < 1


def test_a_host_attention_kernel_is_used_everywhere(networks):
    """``set_attention`` swaps the kernel of every attention (ComfyUI passes its own); same numbers with sdpa's."""
    from vividzoo_core.network.attention import sdpa_attention

    calls = []

    def counting(q, k, v, heads):
        calls.append(q.shape)
        return sdpa_attention(q, k, v, heads)

    network = networks[L4GM]
    inputs = model_input(l4gm_views(video(2, 32, SEED)), plucker_rays(trained_poses(), 32)[None], 32)
    with torch.no_grad():
        before = network(inputs)
        network.set_attention(counting)
        try:
            after = network(inputs)
        finally:
            network.set_attention(sdpa_attention)
    attentions = sum(key.endswith(".attn.qkv.weight") for key in lgm_key_shapes(network.shape))
    assert len(calls) == attentions and torch.equal(before, after)

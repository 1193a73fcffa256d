"""``nodes/comfy_internals.py`` on both sides of the ComfyUI changes it stands for, without a ComfyUI server.

Context windows run through stand-ins of v0.12.1's and the newer cores' ``IndexListContextHandler``
(tests/newer_comfyui.py, written from the stored sources) and the pack's real DIFFUSION_MODEL wrapper; the
reloadable patchers and the CLIP vision loading against the real ComfyUI are in tests/comfyui/test_newer_cores.py.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch
from newer_comfyui import IndexListContextHandler, V0121IndexListContextHandler

from vividzoo_core.cameras import moving_orbit

VIEWS, FRAMES, WINDOW, OVERLAP = 3, 7, 4, 2
# a blended frame is (w1 a + w2 a) / (w1 + w2) of the same a: two products, one sum, one quotient, each rounded
# to half an ulp (float32), against the one unwindowed evaluation
BLEND_RTOL = 4 * 0.5 * torch.finfo(torch.float32).eps


@pytest.fixture(scope="module")
def pack(fake_pack):
    return fake_pack


@pytest.fixture
def comfy_context_windows(monkeypatch):
    module = sys.modules["comfy.context_windows"]
    monkeypatch.setattr(module, "ContextSchedule", lambda name, func: SimpleNamespace(name=name, func=func))
    monkeypatch.setattr(module, "ContextFuseMethod", lambda name, func: SimpleNamespace(name=name, func=func))
    monkeypatch.setattr(module, "create_prepare_sampling_wrapper", lambda model: None)
    return module


def fake_unet(patching):
    """A multi-view video UNet in miniature: each image's output mixes the views of its frame (so a batch that is
    not whole frames of views gives other numbers) and its camera; it refuses timesteps that do not match."""
    def unet(x, timesteps, context, y, control, transformer_options, **kwargs):
        assert timesteps.shape[0] == x.shape[0]
        layout = transformer_options[patching.LAYOUT_KEY]
        frames = x.view(-1, layout.frames, layout.views, *x.shape[1:])
        mixed = frames + frames.mean(2, keepdim=True)
        return mixed.reshape(x.shape) + y[:, :1].view(-1, 1, 1, 1) + timesteps.view(-1, 1, 1, 1)
    return unet


def calc_cond_batch(patching):
    """ComfyUI's calc_cond_batch for the pack's case: cond and uncond copies of the window in one batch, through
    the pack's DIFFUSION_MODEL wrapper, split back per cond."""
    unet = fake_unet(patching)

    def run(model, conds, x, timestep, model_options):
        options = {**model_options["transformer_options"], "cond_or_uncond": list(range(len(conds)))}
        out = patching._with_layout_and_cameras(unet, x.repeat(len(conds), 1, 1, 1), timestep.repeat(len(conds)),
                                                None, None, None, options)
        return list(out.chunk(len(conds)))
    return run


def sample_once(patching, handler, x, timestep):
    rig = moving_orbit(VIEWS, FRAMES, turn=60)
    options = {"transformer_options": {patching.KEY: patching.VideoSettings(rig, 32, FRAMES)}}
    if handler is None:  # the whole video in one call
        return calc_cond_batch(patching)(None, [0, 1], x, timestep, options)
    return handler.execute(calc_cond_batch(patching), None, [0, 1], x, timestep, options)


def pack_handler(patching, monkeypatch, comfy_context_windows, handler_class):
    monkeypatch.setattr(comfy_context_windows, "IndexListContextHandler", handler_class)
    model = SimpleNamespace(model_options={})
    patching.add_context_windows(model, VIEWS, WINDOW, OVERLAP)
    return model.model_options["context_handler"]


def video():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(VIEWS * FRAMES, 2, 2, 2, generator=generator)
    return x, torch.full((VIEWS * FRAMES,), 0.5)


@pytest.mark.parametrize("handler_class", [IndexListContextHandler, V0121IndexListContextHandler],
                         ids=["newer core", "v0.12.1"])
def test_long_videos_blend_whole_frames_on_both_cores(pack, monkeypatch, comfy_context_windows, handler_class):
    patching = pack.patching
    handler = pack_handler(patching, monkeypatch, comfy_context_windows, handler_class)
    assert handler.causal_window_fix is False  # asked off on the newer core; the v0.12.1 one has no anchor
    x, timestep = video()
    expected = sample_once(patching, None, x, timestep)
    blended = sample_once(patching, handler, x, timestep)
    starts = [window.index_list[0] for window in handler.windows_seen]
    assert len(starts) >= 2 and all(start % VIEWS == 0 for start in starts) and max(starts) > 0
    assert all(getattr(window, "causal_anchor_index", None) is None for window in handler.windows_seen)
    for ours, reference in zip(blended, expected):
        torch.testing.assert_close(ours, reference, rtol=BLEND_RTOL, atol=0)


def test_the_newer_cores_anchor_is_refused_with_the_reason(pack, monkeypatch, comfy_context_windows):
    """A handler with the newer default (as the pack built it before, or a stock context-window node) prepends one
    latent from the second window on: one view of the previous frame, which the pack refuses by name; without that
    check the layout itself breaks."""
    patching = pack.patching
    handler = pack_handler(patching, monkeypatch, comfy_context_windows, IndexListContextHandler)
    handler.causal_window_fix = True
    x, timestep = video()
    with pytest.raises(ValueError, match="causal_window_fix"):
        sample_once(patching, handler, x, timestep)
    first, refused = handler.windows_seen  # the first window starts at latent 0: nothing before it
    assert not hasattr(first, "causal_anchor_index") and refused.index_list[0] > 0
    assert refused.causal_anchor_index == refused.index_list[0] - 1  # the last view of the frame before
    monkeypatch.setattr(patching, "window_anchor", lambda window: None)
    with pytest.raises(ValueError, match="not a whole number of multi-view videos"):
        sample_once(patching, handler, x, timestep)


def test_the_v0121_handler_is_built_without_the_newer_parameters(pack, monkeypatch, comfy_context_windows):
    """The parameter is looked up in the handler's signature: the older constructor would refuse it."""
    with pytest.raises(TypeError):
        V0121IndexListContextHandler(None, None, causal_window_fix=False)
    handler = pack_handler(pack.patching, monkeypatch, comfy_context_windows, V0121IndexListContextHandler)
    assert (handler.context_length, handler.context_overlap, handler.dim) == (WINDOW * VIEWS, OVERLAP * VIEWS, 0)


def test_core_options_are_passed_only_where_the_core_takes_them(pack):
    internals = pack.comfy_internals

    def newer(sd, config=None, disable_dynamic=False):
        pass

    def older(sd, config=None):
        pass

    assert internals.dynamic_option(newer, True) == {"disable_dynamic": True}
    assert internals.dynamic_option(older, True) == {}
    assert internals.is_dynamic(SimpleNamespace(is_dynamic=lambda: True))
    assert not internals.is_dynamic(SimpleNamespace())  # a core from before dynamic VRAM


class _RoomAsked(Exception):
    pass


@pytest.mark.parametrize(("kind", "frames", "frames_at_once"), [("lgm", 5, 1), ("l4gm", 20, 16), ("l4gm", 3, 3)])
def test_the_gaussians_node_asks_comfyui_for_the_estimated_room_before_it_moves_the_networks(
        pack, monkeypatch, kind, frames, frames_at_once):
    """On a GPU, ComfyUI unloads its models until the reconstruction's estimate (its upper end) is free, before the
    networks the pack runs itself go onto the device."""
    import importlib

    from vividzoo_core.cameras import orbit
    from vividzoo_core.memory import GB, reconstruction_estimate_gb

    node = importlib.import_module(f"{pack.__name__}.reconstruction")
    network = torch.nn.Linear(1, 1)
    asked = []

    def make_room(bytes_needed, device):
        asked.append((bytes_needed, device, next(network.parameters()).device))
        raise _RoomAsked

    monkeypatch.setattr(node, "compute_device", lambda: torch.device("cuda"))
    monkeypatch.setattr(node, "make_room", make_room)
    images = torch.rand(frames * 4, 256, 256, 3)
    with pytest.raises(_RoomAsked):
        node.MultiViewVideoToGaussians.execute(images, orbit(4), node.LoadedReconstruction("m", kind, network), 8.0,
                                               False, False, 256)
    expected = int(reconstruction_estimate_gb(kind, frames_at_once, 256, False)[1] * GB)
    assert asked == [(expected, torch.device("cuda"), torch.device("cpu"))]

"""Animate3D's forward, guided DDIM step and FreeInit equal the ORIGINAL code's (yanqinJiang/Animate3D).

The fixtures in tests/data/animate3d were recorded by tests/reference/record_animate3d.py from Animate3D's own
classes (torch 1.13.1, diffusers 0.28.0; see tests/reference/README.md) on tiny random weights that
``write_animate3d_test_weights`` regenerates bit for bit here (checked by checksums). Animate3D orders a batch
``(guidance copy, view, frame)``; ours is ``(copy, frame, view)``: inputs and outputs are reordered to compare.

The 256 px fixture is the original unpatched (its spatial attention is sized for 256 px, so its grouping is
right there); at 64 px the original was given the real feature size (the one patch), which is what this
package computes at every size. ``ip_scale.safetensors`` is the 64 px step again with the original's IP-Adapter
processors at scale 0.5 (every other fixture runs at 1.0, where ignoring the scale or applying it twice shows
nothing).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from einops import rearrange
from safetensors import safe_open
from safetensors.torch import load_file
from tolerances import SAFETY, UNIT_ROUNDOFF, relative_difference, rounding_tolerance

from vividzoo_core.animate3d_pipeline import (
    BETA_SCHEDULE,
    Animate3DPipeline,
    Animate3DStep,
    check_condition_images,
    clip_pixels,
    condition_cameras,
    layout_to_video,
    resize_for_latents,
    video_to_layout,
)
from vividzoo_core.checkpoints.animate3d import load_animate3d
from vividzoo_core.checkpoints.clip_vision import load_clip_vision
from vividzoo_core.checkpoints.ip_adapter import load_ip_adapter
from vividzoo_core.checkpoints.mvdream import load_mvdream
from vividzoo_core.diffusers_host import build_vae
from vividzoo_core.diffusers_host.animate3d import (
    build_animate3d_unet,
    build_clip_vision,
)
from vividzoo_core.errors import VividZooError
from vividzoo_core.freeinit import butterworth_low_pass, reinitialise
from vividzoo_core.layout import VideoLayout
from vividzoo_core.network.animate3d import Animate3DAttentionLayers, block_order, decoupled_cross_attention
from vividzoo_core.schedules import ddim_scheduler
from vividzoo_core.synthetic_weights import (
    synthetic_condition_views,
    write_animate3d_test_weights,
)

DATA = Path(__file__).parent / "data" / "animate3d"
META = json.loads((DATA / "meta.json").read_text())
FIXTURES = load_file(str(DATA / "fixtures.safetensors"))
AT_IP_SCALE = load_file(str(DATA / "ip_scale.safetensors"))  # the 64 px step, IP-Adapter scale IP_SCALE
with safe_open(str(DATA / "ip_scale.safetensors"), "pt") as handle:
    AT_IP_SCALE_META = json.loads(handle.metadata()["description"])
IP_SCALE = AT_IP_SCALE_META["ip_scale"]
VIEWS = 4


# The fixtures are the original's float32 results on another CPU: each comparison allows both runs' float32 rounding
# of the tiny networks (tests/tolerances.py), times what guidance and the steps after the network do to it.
# torch's normal_ draws the same numbers up to their last bits, which depend on the kernels (its Box-Muller log,
# sqrt and cos; measured up to 16 x 2^-24 of a tensor's largest value with ATEN_CPU_CAPABILITY=default against
# AVX512, less with MKL's AVX2 code): the recorded weights and noise are regenerated that closely, not bit for bit.
NORMAL_DRAW_ULPS = 16 * UNIT_ROUNDOFF[torch.float32]
NETWORK = rounding_tolerance()
GUIDED_STEP = rounding_tolerance(amplification=1 + 2 * 7.5)  # eps_u + 7.5 (eps_c - eps_u): both errors, 7.5 and 8.5
SHORT_RUN = rounding_tolerance(amplification=6 * (1 + 2 * 7.5))  # 3 steps x 2 FreeInit passes, errors adding up


def close(ours: torch.Tensor, theirs: torch.Tensor, tolerance: float = NETWORK) -> bool:
    """Equal up to float32 rounding: max difference within ``tolerance`` of the reference's largest value."""
    return ours.shape == theirs.shape and relative_difference(ours, theirs) <= tolerance


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_animate3d_test_weights(tmp_path_factory.mktemp("animate3d"))


@pytest.fixture(scope="module")
def network(files):
    return build_animate3d_unet(load_mvdream(files.mvdream), load_animate3d(files.modules),
                                load_ip_adapter(files.ip_adapter_bin))


def test_regenerated_weights_are_the_recorded_ones(files):
    from vividzoo_core.checkpoints.files import read_checkpoint

    for name, (total, squares) in META["file_checksums"].items():
        loaded = read_checkpoint(getattr(files, name))
        tensors = list(loaded.tensors.values()) + [t for part in loaded.extras.values() if isinstance(part, dict)
                                                   for t in part.values()]
        values = [t.double() for t in tensors if t.is_floating_point()]
        # other kernels draw other last bits: up to NORMAL_DRAW_ULPS per value, so the sums move by at most
        moves = [NORMAL_DRAW_ULPS * float(t.abs().max()) for t in values]
        sums = sum(move * t.numel() for move, t in zip(moves, values))
        sums_of_squares = sum(2 * move * float(t.abs().sum()) for move, t in zip(moves, values))
        assert sum(float(t.sum()) for t in values) == pytest.approx(total, rel=0, abs=SAFETY * sums), name
        assert sum(float((t * t).sum()) for t in values) == pytest.approx(squares, rel=0,
                                                                         abs=SAFETY * sums_of_squares), name


def ours_from_original(batch: torch.Tensor, frames: int) -> torch.Tensor:
    """``((k v), ...)`` per-video inputs of the original -> per-image ``((k f v), ...)`` in our layout."""
    per_video = rearrange(batch, "(k v) ... -> k v ...", v=VIEWS)
    return rearrange(per_video[:, None].expand(-1, frames, *per_video.shape[1:]), "k f v ... -> (k f v) ...")


FORWARDS: dict[str, torch.Tensor] = {}  # our UNet output per fixture, shared by the forward and the step test


def unet_forward(network, name: str, fixtures: dict = FIXTURES) -> tuple[torch.Tensor, torch.Tensor]:
    frames = META["sizes"][name]["frames"]
    f = {k[len(name) + 1:]: v for k, v in fixtures.items() if k.startswith(name + ".")}
    sample = rearrange(f["unet_sample"], "(k v) c f h w -> (k f v) c h w", v=VIEWS)
    with torch.no_grad():
        out = network(sample, f["unet_timestep"], ours_from_original(f["unet_context"], frames),
                      ours_from_original(f["unet_camera"], frames), VideoLayout(VIEWS, frames),
                      ours_from_original(f["unet_image_embeds"], frames))
    return out, rearrange(f["unet_output"], "(k v) c f h w -> (k f v) c h w", v=VIEWS)


@pytest.mark.parametrize("name", ["64px", "256px"])
def test_unet_forward_equals_the_original(network, name):
    ours, original = unet_forward(network, name)
    FORWARDS[name] = ours
    assert close(ours, original), float((ours - original).abs().max())


def test_the_ip_scale_fixture_is_the_64px_step_of_the_same_files():
    assert IP_SCALE not in (0.0, 1.0)
    for name, sums in META["file_checksums"].items():  # float64 sums: another torch adds in another order
        assert AT_IP_SCALE_META["file_checksums"][name] == pytest.approx(sums, rel=1e-9), name
    for name in ("sample", "timestep", "context", "camera", "image_embeds"):
        recorded, again = FIXTURES[f"64px.unet_{name}"], AT_IP_SCALE[f"64px.unet_{name}"]
        # two stored files (no rounding of this machine): the same inputs, the encoders' float32 rounding under
        # torch 2.9 (ip_scale) and 1.13 (the rest) apart
        assert close(again, recorded, 1e-6), name


def test_the_unet_forward_at_another_ip_scale_equals_the_original(files, network):
    """Built at the scale, and set on a built network (as the pipeline does): the original's output at that scale,
    far from its output at 1.0 (the distance ignoring the scale would show)."""
    at_scale = build_animate3d_unet(load_mvdream(files.mvdream), load_animate3d(files.modules),
                                    load_ip_adapter(files.ip_adapter_bin), ip_scale=IP_SCALE)
    ours, original = unet_forward(at_scale, "64px", AT_IP_SCALE)
    assert close(ours, original), float((ours - original).abs().max())
    at_one = rearrange(FIXTURES["64px.unet_output"], "(k v) c f h w -> (k f v) c h w", v=VIEWS)
    assert not close(at_one, original, 1e-2)
    network.ip_scale = IP_SCALE
    try:
        assert close(unet_forward(network, "64px", AT_IP_SCALE)[0], original)
    finally:
        network.ip_scale = 1.0


def test_the_whole_unet_form_gives_the_same_network(files, network):
    whole = build_animate3d_unet(load_mvdream(files.mvdream), load_animate3d(files.full))
    ours, original = unet_forward(whole, "64px")
    assert close(ours, original)


def test_cameras_are_the_originals_get_camera():
    ours = condition_cameras().embedding_input()
    assert torch.allclose(ours, FIXTURES["camera.get_camera_4"], atol=1e-6)


def test_the_condition_encodings_are_the_originals(files):
    """CLIP image embeddings and clean first-frame latents (VAE posterior sample) as the original pipeline made them."""
    for name in ("64px", "256px"):
        size, condition = (META["sizes"][name][k] for k in ("pixels", "condition_pixels"))
        views = check_condition_images(synthetic_condition_views(condition))
        encoder = build_clip_vision(load_clip_vision(files.clip_vision))
        embeds = encoder(clip_pixels(views)).image_embeds
        original = FIXTURES[f"{name}.unet_image_embeds"]
        assert close(embeds, original[VIEWS:]) and torch.equal(original[:VIEWS], torch.zeros_like(embeds))
        vae = build_vae(load_mvdream(files.mvdream))
        generator = torch.Generator().manual_seed(META["seed"])
        noise = torch.randn((VIEWS, 4, size // 8, size // 8), generator=generator)
        with torch.no_grad():
            posterior = vae.encode(resize_for_latents(views, size, size)).latent_dist
        first = (posterior.mean + posterior.std * noise) * vae.config.scaling_factor
        assert close(first, FIXTURES[f"{name}.unet_sample"][VIEWS:, :, 0])


def test_one_guided_ddim_step_equals_the_original(network):
    """The whole step through :class:`Animate3DStep` (guidance, DDIM, the clean frame 0 put back), at 64 px."""
    name = "64px"
    size, frames = META["sizes"][name]["pixels"], META["sizes"][name]["frames"]
    f = {k[len(name) + 1:]: v for k, v in FIXTURES.items() if k.startswith(name + ".")}
    scheduler = ddim_scheduler(BETA_SCHEDULE, set_alpha_to_one=True)
    scheduler.set_timesteps(25)
    generator = torch.Generator().manual_seed(META["seed"])
    torch.randn((VIEWS, 4, size // 8, size // 8), generator=generator)  # the posterior noise comes first
    noise = torch.randn((VIEWS, 4, frames - 1, size // 8, size // 8), generator=generator)
    first = f["unet_sample"][VIEWS:, :, 0]
    assert relative_difference(noise, f["unet_sample"][VIEWS:, :, 1:]) <= SAFETY * NORMAL_DRAW_ULPS, "initial noise"
    uncond, cond = f["unet_context"][0], f["unet_context"][VIEWS]
    step = Animate3DStep(network, uncond, cond, f["unet_image_embeds"][VIEWS:], VideoLayout(VIEWS, frames), 7.5)
    with torch.no_grad():
        rest = step(scheduler, scheduler.timesteps[0], first, noise)
    after = torch.cat([first[:, :, None], rest], dim=2)
    assert close(after, f["latents_after_step"], GUIDED_STEP)


def test_the_256px_step_from_the_forward_equals_the_original(network):
    """At 256 px the step reuses the forward's output (the model input is the step's): guidance and DDIM."""
    if "256px" not in FORWARDS:
        FORWARDS["256px"] = unet_forward(network, "256px")[0]
    frames = META["sizes"]["256px"]["frames"]
    scheduler = ddim_scheduler(BETA_SCHEDULE, set_alpha_to_one=True)
    scheduler.set_timesteps(25)
    eps_uncond, eps_cond = FORWARDS["256px"].chunk(2)
    eps = eps_uncond + 7.5 * (eps_cond - eps_uncond)
    latents = rearrange(FIXTURES["256px.unet_sample"][VIEWS:], "v c f h w -> (f v) c h w")
    stepped = layout_to_video(scheduler.step(eps, scheduler.timesteps[0], latents).prev_sample)
    stepped[:, :, 0] = FIXTURES["256px.unet_sample"][VIEWS:, :, 0]
    assert stepped.shape[2] == frames and close(stepped, FIXTURES["256px.latents_after_step"], GUIDED_STEP)


def test_free_init_filter_and_mixing_equal_the_original():
    # values in [0, 1]: ours rounds once from float64, the original's 4 float32 operations (square, sum, power,
    # divide) once each: 5 x 2^-24 x SAFETY 2 = 6e-7
    assert torch.allclose(
        butterworth_low_pass(15, 32, 32), FIXTURES["freeinit.filter_256px_16frames"], atol=1e-6, rtol=0
    )
    scheduler = ddim_scheduler(BETA_SCHEDULE, set_alpha_to_one=True)
    scheduler.set_timesteps(25)
    generator = torch.Generator().manual_seed(22)
    initial = FIXTURES["freeinit.initial"]
    for iteration in (1, 2):
        mixed = reinitialise(FIXTURES[f"freeinit.denoised_{iteration}"], initial, scheduler, generator)
        assert close(mixed, FIXTURES[f"freeinit.mixed_{iteration}"]), iteration  # FFTs: fewer roundings


def test_layout_conversions_are_inverse():
    video = torch.randn(VIEWS, 4, 5, 2, 2)
    assert torch.equal(layout_to_video(video_to_layout(video)), video)
    assert torch.equal(video_to_layout(video)[3 * VIEWS + 2], video[2, :, 3])


@pytest.mark.parametrize("ip_scale", [1.0, IP_SCALE])
def test_the_pipeline_runs_the_recorded_first_step(files, monkeypatch, ip_scale):
    """The standalone pipeline, seeded like the original, reaches the original's latents after one step (the
    settings' ``ip_scale`` reaching the network: the original's step at that scale)."""
    pipeline = Animate3DPipeline.from_files(files.mvdream, files.modules, files.clip_vision, files.ip_adapter_bin,
                                            device="cpu", dtype="fp32")
    size, frames, condition = (META["sizes"]["64px"][k] for k in ("pixels", "frames", "condition_pixels"))
    f = {k[5:]: v for k, v in (FIXTURES if ip_scale == 1.0 else AT_IP_SCALE).items() if k.startswith("64px.")}
    from vividzoo_core import animate3d_pipeline
    from vividzoo_core.animate3d_pipeline import Animate3DSettings

    class Stop(Exception):
        pass

    original_call = animate3d_pipeline.Animate3DStep.__call__
    seen = {}

    def first_step(self, scheduler, timestep, first, rest):
        seen["after"] = torch.cat([first[:, :, None], original_call(self, scheduler, timestep, first, rest)], dim=2)
        raise Stop

    monkeypatch.setattr(animate3d_pipeline.Animate3DStep, "__call__", first_step)
    monkeypatch.setattr(pipeline, "image_embeddings", lambda images: f["unet_image_embeds"][VIEWS:])
    monkeypatch.setattr(animate3d_pipeline, "encode_text",
                        lambda tokenizer, encoder, prompts, device: f["unet_context"][[0, VIEWS]])
    settings = Animate3DSettings("a prompt", frames=frames, width=size, height=size, seed=META["seed"],
                                 ip_scale=ip_scale)
    with pytest.raises(Stop):
        pipeline.denoise(settings, synthetic_condition_views(condition))
    assert close(seen["after"], f["latents_after_step"], GUIDED_STEP)


def test_the_scheduler_is_the_originals():
    """The pipeline's scheduler is the original's DDIMScheduler(**inference.yaml): its beta schedule (linear),
    steps_offset 1, and alpha 1 at the last step."""
    scheduler = ddim_scheduler(BETA_SCHEDULE, set_alpha_to_one=True)
    recorded = dict(META["scheduler"])
    assert recorded.pop("class") == type(scheduler).__name__
    scheduler.set_timesteps(25)
    assert scheduler.timesteps.tolist() == recorded.pop("timesteps_25")
    assert float(scheduler.final_alpha_cumprod) == recorded.pop("final_alpha_cumprod")
    for key, value in recorded.items():
        assert scheduler.config[key] == (tuple(value) if isinstance(value, list) else value), key


def test_a_whole_short_run_with_free_init_equals_the_original(files, monkeypatch):
    """3 steps x 2 FreeInit passes of the standalone pipeline end on the original's final latents: the loop order,
    the clean frame 0, FreeInit on frames 1.. only, and the random draws (posterior, latents, fresh noise)."""
    from vividzoo_core import animate3d_pipeline
    from vividzoo_core.animate3d_pipeline import Animate3DSettings

    pipeline = Animate3DPipeline.from_files(files.mvdream, files.modules, files.clip_vision, files.ip_adapter_bin,
                                            device="cpu", dtype="fp32")
    size, frames, condition = (META["sizes"]["64px"][k] for k in ("pixels", "frames", "condition_pixels"))
    f = {k[5:]: v for k, v in FIXTURES.items() if k.startswith("64px.")}
    monkeypatch.setattr(pipeline, "image_embeddings", lambda images: f["unet_image_embeds"][VIEWS:])
    monkeypatch.setattr(animate3d_pipeline, "encode_text",
                        lambda tokenizer, encoder, prompts, device: f["unet_context"][[0, VIEWS]])
    settings = Animate3DSettings("a prompt", frames=frames, width=size, height=size, seed=META["seed"], steps=3,
                                 free_init_iterations=2)
    steps = []
    latents = pipeline.denoise(
        settings, synthetic_condition_views(condition), lambda step, total: steps.append((step, total))
    )
    assert steps == [(i, 6) for i in range(1, 7)]
    assert close(layout_to_video(latents), f["short_run_3_steps_2_free_init"], SHORT_RUN)


# -- the trained attention weights as a host without diffusers processors (ComfyUI) holds them --------------

def test_attention_layers_follow_the_ip_adapters_layer_order(network):
    paths = network.cross_attention_paths()
    shuffled = paths[1::2] + paths[::2]
    assert sorted(shuffled, key=block_order) == paths
    assert paths[0].startswith("down_blocks.0.") and paths[-1].startswith("mid_block.")


@pytest.mark.parametrize("form", ["modules", "full"])
def test_attention_layers_hold_the_processors_tensors(files, network, form):
    animate3d = load_animate3d(getattr(files, form))
    ip_adapter = load_ip_adapter(files.ip_adapter_safetensors) if form == "modules" else None
    layers = Animate3DAttentionLayers.from_checkpoints(animate3d, ip_adapter)
    assert layers.paths == network.cross_attention_paths()
    processors = network.unet.attn_processors
    for path in layers.paths:
        block = layers[path]
        reference, ip = processors[f"{path}.attn1.processor"], processors[f"{path}.attn2.processor"]
        for ours, theirs in ((block.to_q_i2v, reference.to_q_i2v), (block.to_out_i2v, reference.to_out_i2v),
                             (block.to_k_ip, ip.to_k_ip[0]), (block.to_v_ip, ip.to_v_ip[0])):
            assert torch.equal(ours.weight, theirs.weight)
        assert torch.equal(block.to_out_i2v.bias, reference.to_out_i2v.bias)
    with pytest.raises(VividZooError, match="it also needs the IP-Adapter"):
        Animate3DAttentionLayers.from_checkpoints(load_animate3d(files.modules), None)


def test_the_image_attention_is_added_at_the_ip_scale():
    """``attn(q, text) + scale * attn(q, image)``, the original's ``hidden_states + scale * ip_hidden_states``, by
    hand per head in float64 (rounding ~1e-15 of values of order 1), at scales 0, 0.5, 1 and 1.7."""
    generator = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(2, n, 8, generator=generator, dtype=torch.float64) for n in (5, 7, 7))
    image_k, image_v = (torch.randn(2, 4, 8, generator=generator, dtype=torch.float64) for _ in range(2))

    def by_hand(keys, values):
        heads = []
        for h in range(2):
            part = slice(4 * h, 4 * h + 4)
            weights = torch.softmax(q[..., part] @ keys[..., part].transpose(1, 2) / 2.0, dim=-1)  # sqrt(4)
            heads.append(weights @ values[..., part])
        return torch.cat(heads, dim=-1)

    for scale in (0.0, 0.5, 1.0, 1.7):
        ours = decoupled_cross_attention(q, k, v, image_k, image_v, 2, scale)
        assert torch.allclose(ours, by_hand(k, v) + scale * by_hand(image_k, image_v), rtol=0, atol=1e-12), scale

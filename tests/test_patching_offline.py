"""``nodes/patching.py`` without a ComfyUI server: the schedule mapping, the frame-major context
windows and their weights, the checks before sampling, and the cameras fed to each call.

ComfyUI's side is played by small stand-ins that follow its v0.12.1 code (named where used); the
real-host tests in tests/comfyui run the same logic inside ComfyUI.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch
from test_sampling_math import BLENDED_OFFSETS
from tolerances import SAFETY

from vividzoo_core.cameras import moving_orbit, orbit
from vividzoo_core.schedules import ddim_scheduler


@pytest.fixture(scope="module")
def patching(fake_pack):
    return fake_pack.patching


def options(patching, cameras, max_frames=None, frames=None, handler=None) -> dict:
    settings = patching.VideoSettings(cameras, max_frames, frames)
    model_options = {"transformer_options": {patching.KEY: settings}}
    if handler is not None:
        model_options["context_handler"] = handler
    return model_options


# -- the beta schedule ------------------------------------------------------------------------------

class ComfyDiscreteSampling:
    """ComfyUI's ``ModelSamplingDiscrete`` schedule (comfy/model_sampling.py, make_beta_schedule in
    comfy/ldm/modules/diffusionmodules/util.py): its ``linear`` is linear in sqrt(beta),
    ``sqrt_linear`` linear in beta; sigma = sqrt((1 - alpha_bar) / alpha_bar)."""

    def __init__(self, model_config) -> None:
        settings = model_config.sampling_settings
        start, end = settings["linear_start"], settings["linear_end"]
        betas = {
            "linear": torch.linspace(start**0.5, end**0.5, 1000, dtype=torch.float64) ** 2,
            "sqrt_linear": torch.linspace(start, end, 1000, dtype=torch.float64),
        }[settings["beta_schedule"]]
        alpha_bar = torch.cumprod(1 - betas, 0)
        self.sigmas = ((1 - alpha_bar) / alpha_bar).sqrt()


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear"])
def test_comfyui_schedule_gives_the_standalone_sigmas(patching, monkeypatch, schedule):
    monkeypatch.setattr(sys.modules["comfy.model_sampling"], "ModelSamplingDiscrete", ComfyDiscreteSampling)
    monkeypatch.setattr(sys.modules["comfy.model_sampling"], "EPS", type("EPS", (), {}))
    sampling = patching.beta_schedule_sampling(schedule)
    alpha_bar = ddim_scheduler(schedule).alphas_cumprod.double()  # diffusers keeps float32
    # float32 alpha_bar carries up to (t + 1) half-ulps of 1 (2^-25 each) while 1 - alpha_bar is about (t + 1) x beta_0:
    # sigma is off by at most 2^-25 / (2 beta_0) = 1.8e-5 relative (the square root halves it), SAFETY 2 on top
    bound = 2**-25 / (2 * 0.00085) * SAFETY
    torch.testing.assert_close(sampling.sigmas, ((1 - alpha_bar) / alpha_bar).sqrt(), atol=0, rtol=bound)
    with pytest.raises(ValueError, match="unknown beta schedule"):
        patching.beta_schedule_sampling("sqrt_linear")


# -- context windows: frame-major schedule and pyramid weights -----------------------------------------

@pytest.fixture
def comfy_context_windows(monkeypatch):
    """Records what add_context_windows hands to ComfyUI's context-window classes."""
    module = sys.modules["comfy.context_windows"]
    wrapped = []
    monkeypatch.setattr(module, "IndexListContextHandler", lambda *args, **kwargs: SimpleNamespace(
        context_schedule=args[0], fuse_method=args[1], **kwargs))
    monkeypatch.setattr(module, "ContextSchedule", lambda name, func: SimpleNamespace(name=name, func=func))
    monkeypatch.setattr(module, "ContextFuseMethod", lambda name, func: SimpleNamespace(name=name, func=func))
    monkeypatch.setattr(module, "create_prepare_sampling_wrapper", wrapped.append)
    return wrapped


def comfy_blend(handler, model_options, x, predict):
    """ComfyUI's IndexListContextHandler.execute for one cond: sum of weighted window outputs / sum of weights."""
    total, counts = torch.zeros_like(x), torch.zeros(x.shape[0])
    for window in handler.context_schedule.func(x.shape[0], handler, model_options):
        weights = torch.tensor(handler.fuse_method.func(len(window), full_length=x.shape[0], idxs=window))
        total[window] += predict(x[window], window) * weights.view(-1, *[1] * (x.dim() - 1))
        counts[window] += weights
    return total / counts.view(-1, *[1] * (x.dim() - 1))


def test_comfyui_windows_are_whole_frames_with_pyramid_weights(patching, comfy_context_windows):
    views = 3
    model = SimpleNamespace(model_options=options(patching, orbit(views)))
    patching.add_context_windows(model, views, window_frames=4, overlap_frames=2)
    handler = model.model_options["context_handler"]
    assert comfy_context_windows == [model]
    assert (handler.context_length, handler.context_overlap, handler.dim) == (4 * views, 2 * views, 0)
    windows = handler.context_schedule.func(6 * views, handler, model.model_options)
    assert windows == [[f * views + v for f in frames for v in range(views)] for frames in ([0, 1, 2, 3], [2, 3, 4, 5])]
    assert handler.fuse_method.func(4 * views) == [1.0] * 3 + [2.0] * 6 + [1.0] * 3

    x = torch.randn(6 * views, 2, 2)
    blended = comfy_blend(handler, model.model_options, x, lambda part, window: part**2 + window[0] // views)
    offsets = torch.tensor(BLENDED_OFFSETS).repeat_interleave(views)
    torch.testing.assert_close(blended, x**2 + offsets.view(-1, 1, 1))


def test_overlap_is_kept_below_the_window(patching, comfy_context_windows):
    model = SimpleNamespace(model_options=options(patching, orbit(2)))
    handler = patching.add_context_windows(model, 2, window_frames=4, overlap_frames=9).model_options["context_handler"]
    assert (handler.context_length, handler.context_overlap) == (8, 6)


# -- checks before sampling ---------------------------------------------------------------------------

def test_check_video_counts_frames_and_refuses_what_does_not_fit(patching):
    cameras = orbit(4)
    assert patching.check_video(options(patching, cameras, max_frames=3), 12) == 3
    with pytest.raises(ValueError, match="10 images, not a whole number of frames of 4 views"):
        patching.check_video(options(patching, cameras), 10)
    with pytest.raises(ValueError, match="3 frames is more than the motion module sees at once \\(at most 2\\)"):
        patching.check_video(options(patching, cameras, max_frames=2), 12)
    fitting = SimpleNamespace(context_length=2 * 4)
    assert patching.check_video(options(patching, cameras, max_frames=2, handler=fitting), 12) == 3
    too_long = SimpleNamespace(context_length=3 * 4)
    with pytest.raises(ValueError, match="context windows of 3 frames are longer than the motion module's limit of 2"):
        patching.check_video(options(patching, cameras, max_frames=2, handler=too_long), 16)
    with pytest.raises(ValueError, match="trajectory has 5 frames but the video has 3"):
        patching.check_video(options(patching, moving_orbit(4, 5)), 12)


def sampling_run(patching, monkeypatch, model_options: dict, free_bytes: float):
    """The OUTER_SAMPLE executor of a run on a model with ``free_bytes`` of free device memory."""
    calls = []

    def executor(noise, latent_image, *args):
        calls.append(model_options["transformer_options"][patching.KEY].frames)
        return "sampled"

    model = SimpleNamespace(get_dtype=lambda: torch.float16, manual_cast_dtype=None)
    patcher = SimpleNamespace(model_options=model_options, load_device="cpu", model=model)
    executor.class_obj = SimpleNamespace(model_options=model_options, model_patcher=patcher)
    monkeypatch.setattr(patching, "free_memory", lambda device: free_bytes)
    return executor, calls


def test_a_run_records_its_frame_count(patching, monkeypatch):
    model_options = options(patching, orbit(2), max_frames=8)
    executor, calls = sampling_run(patching, monkeypatch, model_options, free_bytes=64 * 1024**3)
    assert patching._check_and_record_run(executor, torch.zeros(10, 4, 2, 2), None) == "sampled"
    assert calls == [5]


def test_a_run_that_cannot_fit_is_refused_before_sampling(patching, monkeypatch):
    model_options = options(patching, orbit(4), max_frames=32)
    executor, calls = sampling_run(patching, monkeypatch, model_options, free_bytes=1024**3)
    with pytest.raises(
        ValueError, match=r"4 views x 16 frames x 512x512 px needs at least about .* on cpu .* only 1.0 GB is free"
    ):
        patching._check_and_record_run(executor, torch.zeros(4 * 16, 4, 64, 64), None)
    assert calls == []


# -- cameras and layout for each model call -----------------------------------------------------------

def call_with_cameras(patching, transformer_options: dict, batch: int):
    seen = {}

    def executor(x, timesteps, context, y, control, options):
        seen.update(y=y, layout=options[patching.LAYOUT_KEY])

    patching._with_layout_and_cameras(
        executor, torch.zeros(batch, 4, 2, 2), None, None, None, None, transformer_options
    )
    return seen["y"], seen["layout"]


def test_every_copy_of_the_batch_gets_the_cameras_of_its_frames(patching):
    views, frames = 2, 4
    rig = moving_orbit(views, frames, turn=90)
    embedding = rig.embedding_input()
    recorded = {patching.KEY: patching.VideoSettings(rig, 8, frames)}
    # cond and uncond in one call: two copies of the whole video
    y, layout = call_with_cameras(patching, recorded, 2 * views * frames)
    assert (layout.views, layout.frames) == (views, frames)
    torch.testing.assert_close(y, torch.cat([embedding, embedding]))
    # one context window over frames 1 and 2, two copies
    window = SimpleNamespace(index_list=[2, 3, 4, 5])
    y, layout = call_with_cameras(patching, {**recorded, "context_window": window}, 2 * views * 2)
    assert (layout.views, layout.frames) == (views, 2)
    torch.testing.assert_close(y, embedding[[2, 3, 4, 5, 2, 3, 4, 5]])
    with pytest.raises(ValueError, match="cut through the views of a frame"):
        call_with_cameras(patching, {**recorded, "context_window": SimpleNamespace(index_list=[1, 2, 3])}, 3)
    # before a run has recorded its frames: copies from cond_or_uncond
    unrecorded = {patching.KEY: patching.VideoSettings(orbit(views)), "cond_or_uncond": [1, 0]}
    y, layout = call_with_cameras(patching, unrecorded, 2 * views * 3)
    assert (layout.views, layout.frames) == (views, 3)
    torch.testing.assert_close(y, orbit(views).embedding_input().repeat(6, 1))


# -- Animate3D: condition views in every call, FreeInit ---------------------------------------------------

@pytest.fixture(scope="module")
def animate3d(fake_pack):
    return fake_pack.animate3d_model


def animate3d_options(patching, animate3d, frames: int, cond_or_uncond: list[int]) -> tuple[dict, object]:
    views = 4
    conditions = animate3d.Animate3DConditions(
        first_latents=torch.arange(views, dtype=torch.float32).view(views, 1, 1, 1).expand(views, 4, 2, 2) + 100,
        image_tokens=torch.arange(views, dtype=torch.float32).view(views, 1, 1).expand(views, 2, 3).clone(),
        empty_tokens=torch.full((2, 3), -1.0), ip_scale=0.5)
    settings = patching.VideoSettings(orbit(views), 32, frames, model="animate3d")
    return {patching.KEY: settings, patching.ANIMATE3D_KEY: conditions, "cond_or_uncond": cond_or_uncond}, conditions


def test_each_image_gets_its_views_tokens_and_negative_copies_the_empty_ones(patching, animate3d):
    _, conditions = animate3d_options(patching, animate3d, frames=3, cond_or_uncond=[1, 0])
    layout = patching.VideoLayout(4, 3)
    tokens = animate3d.image_tokens_for_batch(conditions, [1, 0], layout)
    assert tokens.shape == (2 * 12, 2, 3)
    assert (tokens[:12] == -1).all()  # the negative (uncond) copy: a zero embedding's tokens
    assert tokens[12:, 0, 0].tolist() == [0.0, 1.0, 2.0, 3.0] * 3  # image (f, v) of the positive copy: view v


def test_frame_0_is_the_clean_condition_latents_in_and_out_of_every_call(patching, animate3d):
    frames, copies = 3, 2
    options, conditions = animate3d_options(patching, animate3d, frames, cond_or_uncond=[1, 0])
    layout = patching.VideoLayout(4, frames)
    x = torch.randn(copies * layout.images, 4, 2, 2)
    seen = {}

    def diffusion_model(x_in, *args, **kwargs):
        seen["x"] = x_in
        return x_in

    animate3d._clean_first_frame_in(diffusion_model, x, None, None, None, None, options)
    first = layout.batch_indices([0], copies)
    assert torch.equal(seen["x"][first], conditions.first_latents.repeat(copies, 1, 1, 1))
    rest = torch.ones(len(x), dtype=torch.bool)
    rest[first] = False
    assert torch.equal(seen["x"][rest], x[rest])

    def apply_model(x_in, t, c_concat, c_crossattn, control, transformer_options, **kwargs):
        seen["call"] = transformer_options[animate3d.CALL_KEY]
        return x_in * 2

    layers = SimpleNamespace(__getitem__=None)
    apply_model.class_obj = SimpleNamespace(
        current_patcher=SimpleNamespace(get_additional_models_with_key=lambda key: [SimpleNamespace(model=layers)]),
        diffusion_model=SimpleNamespace(input_blocks=[], middle_block=[], output_blocks=[]))
    denoised = animate3d._with_condition_views(apply_model, x, None, transformer_options=options)
    assert torch.equal(denoised[first], conditions.first_latents.repeat(copies, 1, 1, 1))
    assert torch.equal(denoised[rest], 2 * x[rest])
    assert seen["call"].ip_scale == 0.5 and seen["call"].image_tokens.shape == (copies * layout.images, 2, 3)
    with pytest.raises(ValueError, match="remove the context-window node"):
        animate3d._with_condition_views(apply_model, x, None, transformer_options={**options, "context_window": 1})


def test_comfyui_block_keys_name_the_diffusers_blocks_of_sd15(animate3d):
    from vividzoo_core.synthetic_weights import FULL_SD15, spatial_attention_sites

    keys = [("input", n, 0) for n in (1, 2, 4, 5, 7, 8)] + [("middle", 0, 0)] + [("output", n, 0) for n in range(3, 12)]
    assert sorted(animate3d.diffusers_block_path(*key) for key in keys) == sorted(
        path for path, _ in spatial_attention_sites(FULL_SD15.unet))
    assert animate3d.diffusers_block_path("input", 4, 0) == "down_blocks.1.attentions.0.transformer_blocks.0"
    assert animate3d.diffusers_block_path("output", 5, 0) == "up_blocks.1.attentions.2.transformer_blocks.0"



def test_block_paths_invert_the_block_placement_of_the_motion_modules(patching, animate3d):
    keys = [("input", n, 0) for n in (1, 2, 4, 5, 7, 8)] + [("middle", 0, 0)] + [("output", n, 0) for n in range(3, 12)]
    for key in keys:
        parts = animate3d.diffusers_block_path(*key).split(".")
        level, index = (None, 0) if parts[0] == "mid_block" else (int(parts[1]), int(parts[3]))
        assert patching.ldm_block(parts[0], level, index) == key[:2]


@pytest.mark.parametrize("animate3d_video", [True, False])
def test_free_init_reinitialises_each_pass_as_the_standalone_does(patching, animate3d, monkeypatch, animate3d_video):
    """Three passes; the second and third start from the core's re-initialisation of the last result (frame 0 of an
    Animate3D video left as it was), with ComfyUI's last training sigma giving diffusers' final alpha."""
    from vividzoo_core.freeinit import butterworth_low_pass, reinitialise

    monkeypatch.setattr(sys.modules["comfy.model_sampling"], "ModelSamplingDiscrete", ComfyDiscreteSampling)
    monkeypatch.setattr(sys.modules["comfy.model_sampling"], "EPS", type("EPS", (), {}))
    sampling = patching.beta_schedule_sampling("linear")
    sampling.sigma_max = sampling.sigmas[-1]
    frames, seed = 4, 11
    options, _ = animate3d_options(patching, animate3d, frames, [0])
    if not animate3d_video:
        del options[patching.ANIMATE3D_KEY]
    options[patching.FREE_INIT_KEY] = animate3d.FreeInitSettings(3)
    model_options = {"transformer_options": options}
    results = [torch.randn(4 * frames, 4, 4, 4) for _ in range(3)]
    noises = []

    def outer_sample(noise, latent_image, *args, **kwargs):
        noises.append(noise.clone())
        return results[len(noises) - 1]

    model = SimpleNamespace(get_model_object=lambda name: sampling,
                            model=SimpleNamespace(process_latent_in=lambda latent: latent * 0.18215))
    outer_sample.class_obj = SimpleNamespace(model_options=model_options, model_patcher=model)
    monkeypatch.setattr(animate3d, "stop_if_cancelled", lambda: None)
    noise = torch.randn(4 * frames, 4, 4, 4)
    assert animate3d._free_init(outer_sample, noise, torch.zeros_like(noise), None, None, seed=seed) is results[2]
    assert len(noises) == 3 and torch.equal(noises[0], noise)

    skip = 1 if animate3d_video else 0
    generator = torch.Generator().manual_seed(seed)
    torch.randn(noise.shape, generator=generator)
    initial = animate3d.layout_to_video(noise, 4)
    scheduler = ddim_scheduler("linear", set_alpha_to_one=True)
    for result, started in zip(results[:2], noises[1:]):
        denoised = animate3d.layout_to_video(result * 0.18215, 4)
        expected = reinitialise(denoised[:, :, skip:], initial[:, :, skip:], scheduler, generator,
                                butterworth_low_pass(frames - skip, 4, 4))
        ours = animate3d.layout_to_video(started, 4)
        torch.testing.assert_close(ours[:, :, skip:], expected, atol=1e-5, rtol=1e-5)
        assert torch.equal(ours[:, :, :skip], initial[:, :, :skip])

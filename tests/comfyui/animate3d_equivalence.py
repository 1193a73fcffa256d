"""Animate3D's guided noise prediction: the patched ComfyUI MODEL against the standalone ``Animate3DStep``.

Run with ComfyUI's Python: ``python animate3d_equivalence.py COMFYUI_DIR PACK_DIR WEIGHTS_DIR`` (WEIGHTS_DIR from
``write_animate3d_test_weights``). Prints one JSON line. Both sides get the same weights, prompt embeddings, CLIP
image embeddings and clean condition latents; ComfyUI's own sampler path runs the MODEL (a one-evaluation KSAMPLER
through ``comfy.sample.sample_custom``), so every wrapper and patch a real run uses is in play. The generated frames'
noise is compared (frame 0's is discarded by both: the original puts the condition latents back after each step);
frame 0 of ComfyUI's denoised output must be the condition latents exactly.

``original_ip_scale`` compares the MODEL with Animate3D's ORIGINAL code directly: built at the IP-Adapter scale of
``tests/data/animate3d/ip_scale.safetensors`` (0.5, recorded by tests/reference/record_animate3d.py) and fed that
fixture's UNet inputs (latents, timestep, prompt embeddings, CLIP image embeddings, frame 0), its guided noise
prediction (7.5, the original's guidance) and its positive one (1.0) on the generated frames are the original's.

Each ``breaks`` entry reruns the comparison (with guidance) with one piece of the ComfyUI side broken (the IP scale
ignored, the image tokens' views in another order, frame 0 not replaced in the input, the reference attention off,
the negative branch given the views' tokens instead of a zero embedding's): each must fail the tolerance the intact
MODEL meets.
The condition encodings are compared too: the loader's image encoder (ComfyUI's text-encoder dtype), a ComfyUI
CLIP_VISION of the same weights (ComfyUI's preprocessing), and ComfyUI's VAE Encode against the posterior mean.
"""

from __future__ import annotations

import json
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared custom-node loader
from custom_nodes import import_custom_nodes

PROMPT = "a dragon flapping its wings, 3d asset"
IP_SCALE = 0.7  # not 1, so that ignoring the scale shows
FRAMES, SIZE, TIMESTEP = 5, 64, 601


def main(comfy_dir: str, pack_dir: str, weights_dir: str) -> None:
    sys.path.insert(0, comfy_dir)
    from comfy.cli_args import args

    args.cpu = True
    import comfy.clip_vision
    import comfy.sample
    import comfy.samplers
    import folder_paths
    import torch

    import_custom_nodes(Path(pack_dir))
    from vividzoo_pack.nodes import animate3d_model
    from vividzoo_pack.nodes.animate3d import Animate3DLoader, comfy_image_encoder
    from vividzoo_pack.nodes.mvdream_model import load_mvdream_model
    from vividzoo_pack.vividzoo_core.animate3d_pipeline import (
        Animate3DPipeline,
        Animate3DStep,
        clip_pixels,
        resize_for_latents,
    )
    from vividzoo_pack.vividzoo_core.diffusers_host import encode_text
    from vividzoo_pack.vividzoo_core.layout import VideoLayout
    from vividzoo_pack.vividzoo_core.network.attention import multiview_attention
    from vividzoo_pack.vividzoo_core.schedules import make_betas
    from vividzoo_pack.vividzoo_core.synthetic_weights import (
        TINY_CLIP_VISION,
        synthetic_condition_views,
    )

    weights = Path(weights_dir)
    for folder in ("vividzoo", "animatediff_models", "ipadapter", "clip_vision"):
        folder_paths.add_model_folder_path(folder, str(weights))
    names = {"mvdream": "mvdream_sd15_animate3d_tiny_random.pt",
             "animate3d": "animate3d_motion_modules_tiny_random.ckpt",
             "ip_adapter": "ip-adapter_sd15_tiny_random.safetensors",
             "clip_vision": "clip_vision_h_tiny_random.safetensors"}
    layout = VideoLayout(4, FRAMES)
    views = torch.from_numpy(synthetic_condition_views(SIZE)).float() / 255

    standalone = Animate3DPipeline.from_files(*(weights / names[k] for k in ("mvdream", "animate3d", "clip_vision",
                                                                             "ip_adapter")), device="cpu", dtype="fp32")
    standalone.network.ip_scale = IP_SCALE
    embeddings = standalone.image_embeddings(views)
    first = standalone.condition_latents(views, SIZE, SIZE, torch.zeros(4, 4, SIZE // 8, SIZE // 8))  # posterior mean
    with torch.no_grad():
        uncond, cond = encode_text(standalone.tokenizer, standalone.text_encoder, ["", PROMPT], "cpu").unbind(0)
    step = Animate3DStep(standalone.network, uncond, cond, embeddings, layout, cfg=1.0)

    model, _, vae, _ = load_mvdream_model(str(weights / names["mvdream"]))
    loaded = Animate3DLoader.execute(names["animate3d"], names["ip_adapter"], names["clip_vision"]).args[0]
    with torch.no_grad():
        tokens = loaded.projection(embeddings)
        empty = loaded.projection(torch.zeros(1, embeddings.shape[1]))[0]
    conditions = animate3d_model.Animate3DConditions(first, tokens, empty, IP_SCALE)

    torch.manual_seed(0)
    noise = torch.randn(layout.images, 4, SIZE // 8, SIZE // 8)

    def comfy_prediction(patched, cfg: float, start=noise, timestep=TIMESTEP, texts=(uncond, cond)):
        sampling = patched.get_model_object("model_sampling")
        sigma = sampling.sigma(torch.tensor(float(timestep)))
        captured = {}

        def one_evaluation(model_fn, x, sigmas, extra_args=None, callback=None, disable=None):
            denoised = model_fn(x, sigmas[0] * x.new_ones([x.shape[0]]), **(extra_args or {}))
            captured.update(eps=(x - denoised) / sigmas[0], denoised=denoised)
            return denoised

        comfy.sample.sample_custom(patched, start, cfg, comfy.samplers.KSAMPLER(one_evaluation),
                                   torch.stack([sigma, torch.tensor(0.0)]), [[texts[1][None], {}]],
                                   [[texts[0][None], {}]], torch.zeros_like(start), seed=0)
        return captured["eps"].float(), captured["denoised"].float()

    def standalone_prediction(patched, cfg: float) -> torch.Tensor:
        sigma = patched.get_model_object("model_sampling").sigma(torch.tensor(float(TIMESTEP)))
        latents = noise * sigma / (sigma**2 + 1) ** 0.5  # ComfyUI's x = sigma * noise, as the UNet's (VP) input
        latents[layout.batch_indices([0], 1)] = first
        step.cfg = cfg
        with torch.no_grad():
            return step.noise_prediction(latents, torch.tensor(TIMESTEP))

    generated = torch.ones(layout.images, dtype=torch.bool)
    generated[layout.batch_indices([0], 1)] = False

    def compare(patched, cfgs=(1.0, 7.5)) -> dict:
        report = {}
        for cfg in cfgs:
            (ours, denoised), reference = comfy_prediction(patched, cfg), standalone_prediction(patched, cfg)
            difference = (ours - reference)[generated]
            report[f"cfg_{cfg}"] = {
                "max_abs_diff": difference.abs().max().item(),
                "rms_rel_diff": (difference.pow(2).mean() / reference[generated].pow(2).mean()).sqrt().item(),
                "scale": reference[generated].abs().max().item(),
                "frame0_max_abs_diff": (denoised[~generated] - first).abs().max().item(),
            }
        return report

    report = {"intact": compare(animate3d_model.patch_animate3d(model, loaded, conditions))}

    def against_original() -> dict:
        """The MODEL at the fixture's IP scale, fed the fixture's UNet inputs, against the original's UNet output."""
        from einops import rearrange
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(pack_dir) / "tests" / "data" / "animate3d" / "ip_scale.safetensors"
        with safe_open(str(path), "pt") as handle:
            recorded = json.loads(handle.metadata()["description"])
        assert (recorded["frames"], recorded["pixels"]) == (FRAMES, SIZE), recorded
        f = {k.split(".", 1)[1]: v for k, v in load_file(str(path)).items()}
        views = layout.views

        def ours(t):  # the original's (copy, view, [channels,] frame, ...) -> our (copy, frame, view) images
            return rearrange(t, "(k v) c f h w -> k (f v) c h w", v=views)

        sample, output = ours(f["unet_sample"])[1], ours(f["unet_output"])
        first_latents = f["unet_sample"][views:, :, 0]
        uncond_text, cond_text = f["unet_context"][0], f["unet_context"][views]
        with torch.no_grad():
            fixture_tokens = loaded.projection(f["unet_image_embeds"][views:])
            zero_tokens = loaded.projection(f["unet_image_embeds"][:1])[0]  # the original's negative: zero embedding
        assert not f["unet_image_embeds"][:views].any()
        patched = animate3d_model.patch_animate3d(
            model, loaded, animate3d_model.Animate3DConditions(first_latents, fixture_tokens, zero_tokens,
                                                               recorded["ip_scale"]))
        timestep = f["unet_timestep"].item()
        sigma = patched.get_model_object("model_sampling").sigma(torch.tensor(float(timestep)))
        start = sample * (sigma**2 + 1) ** 0.5 / sigma  # the KSAMPLER's x = sigma * noise is the UNet input scaled
        result = {"ip_scale": recorded["ip_scale"]}
        for cfg in (1.0, 7.5):
            eps, _ = comfy_prediction(patched, cfg, start, timestep, (uncond_text, cond_text))
            reference = output[1] if cfg == 1.0 else output[0] + cfg * (output[1] - output[0])
            difference = (eps - reference)[generated]
            result[f"cfg_{cfg}"] = {
                "max_abs_diff": difference.abs().max().item(),
                "rms_rel_diff": (difference.pow(2).mean() / reference[generated].pow(2).mean()).sqrt().item(),
                "scale": reference[generated].abs().max().item(),
            }
        return result

    report["original_ip_scale"] = against_original()

    @contextmanager
    def broken(name: str, replacement):
        original = getattr(animate3d_model, name)
        setattr(animate3d_model, name, replacement)
        try:
            yield
        finally:
            setattr(animate3d_model, name, original)

    decoupled, tokens_for_batch = animate3d_model.decoupled_cross_attention, animate3d_model.image_tokens_for_batch
    breaks = {
        "ip_scale_ignored": ("decoupled_cross_attention",
                             lambda q, k, v, ik, iv, heads, scale, attention: decoupled(q, k, v, ik, iv, heads, 1.0,
                                                                                        attention)),
        "image_tokens_view_order": ("image_tokens_for_batch", lambda c, kinds, lay: tokens_for_batch(
            animate3d_model.Animate3DConditions(c.first_latents, c.image_tokens.roll(1, 0), c.empty_tokens,
                                                c.ip_scale), kinds, lay)),
        "negative_gets_view_tokens": ("image_tokens_for_batch", lambda c, kinds, lay: tokens_for_batch(
            c, [0] * len(kinds), lay)),
        "frame0_not_replaced": ("_clean_first_frame_in", lambda executor, *args, **kwargs: executor(*args, **kwargs)),
        "reference_attention_off": ("reference_multiview_attention",
                                    lambda q, k, v, queries, heads, lay, out, attention: multiview_attention(
                                        q, k, v, heads, lay, attention)),
    }
    report["breaks"] = {}
    for label, (name, replacement) in breaks.items():
        with broken(name, replacement):
            report["breaks"][label] = compare(animate3d_model.patch_animate3d(model, loaded, conditions), (7.5,))
            if label == "ip_scale_ignored":
                report["breaks"]["ip_scale_ignored_against_original"] = against_original()

    # the condition encodings
    ours = loaded.image_encoder.encode(views)
    report["image_embeddings"] = {"max_abs_diff": (ours - embeddings).abs().max().item(),
                                  "scale": embeddings.abs().max().item(), "dtype": str(ours.dtype)}
    views256 = torch.from_numpy(synthetic_condition_views(256)).float() / 255  # downscaled to 224, as in real use
    report["comfy_clip_vision"] = comfy_clip_vision_report(comfy.clip_vision, comfy_image_encoder, clip_pixels,
                                                           weights / names["clip_vision"], TINY_CLIP_VISION, views256,
                                                           standalone.image_embeddings(views256))
    latents = vae.encode(((resize_for_latents(views, SIZE, SIZE) + 1) / 2).permute(0, 2, 3, 1))
    comfy_first = model.model.process_latent_in(latents.float())
    report["vae_posterior_mean"] = {"max_abs_diff": (comfy_first - first).abs().max().item(),
                                    "scale": first.abs().max().item()}
    sampling = animate3d_model.patch_animate3d(model, loaded, conditions).get_model_object("model_sampling")
    alphas_cumprod = torch.cumprod(1 - make_betas("linear"), 0)
    reference_sigmas = ((1 - alphas_cumprod) / alphas_cumprod).sqrt()
    relative = (sampling.sigmas.double() - reference_sigmas).abs() / reference_sigmas
    report["sigmas_max_rel_diff"] = relative.max().item()
    print(json.dumps(report))


def comfy_clip_vision_report(clip_vision_module, comfy_image_encoder, clip_pixels, path, shape, views, embeddings):
    """ComfyUI's own CLIP vision class on the same weights (its loader refuses tiny encoders, so it is made from a
    config of the tiny shape): the pixels its preprocessing gives against the original's, and the embeddings."""
    import comfy.clip_model
    import comfy.utils

    config = {"hidden_size": shape.width, "image_size": shape.image_size, "intermediate_size": shape.intermediate,
              "num_attention_heads": shape.heads, "num_hidden_layers": shape.layers, "patch_size": shape.patch,
              "projection_dim": shape.projection, "hidden_act": "gelu", "model_type": "clip_vision_model",
              "num_channels": 3, "layer_norm_eps": 1e-5}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    clip = clip_vision_module.ClipVisionModel(handle.name)
    clip.load_sd(comfy.utils.load_torch_file(str(path)))
    encoded = comfy_image_encoder(clip, shape.projection, "the test IP-Adapter").encode(views)
    comfy_pixels = comfy.clip_model.clip_preprocess(views, size=shape.image_size).float()
    original_pixels = clip_pixels(views, shape.image_size)
    return {"pixels_max_abs_diff": (comfy_pixels - original_pixels).abs().max().item(),
            "pixels_mean_abs_diff": (comfy_pixels - original_pixels).abs().mean().item(),
            "embeddings_max_abs_diff": (encoded - embeddings).abs().max().item(),
            "scale": embeddings.abs().max().item(), "dtype": str(clip.dtype)}


if __name__ == "__main__":
    main(*sys.argv[1:4])

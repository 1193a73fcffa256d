"""Noise prediction of the patched ComfyUI MODEL vs the standalone pipeline, same weights and inputs.

Run with ComfyUI's Python: ``python noise_equivalence.py COMFYUI_DIR PACK_DIR WEIGHTS_DIR``. Prints
one JSON line: the largest absolute differences and the scale of the prediction. ComfyUI's own
sampler path is used (a one-evaluation KSAMPLER through ``comfy.sample.sample_custom``), so the
wrappers, injections and conds are the ones a real run uses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared custom-node loader
from custom_nodes import import_custom_nodes  # noqa: E402


def main(comfy_dir: str, pack_dir: str, weights_dir: str) -> None:
    sys.path.insert(0, comfy_dir)
    from comfy.cli_args import args

    args.cpu = True
    import comfy.sample
    import comfy.samplers
    import torch

    import_custom_nodes(Path(pack_dir))
    import folder_paths
    from vividzoo_pack.nodes.loaders import AlignmentLoader, MotionModuleLoader
    from vividzoo_pack.nodes.mvdream_model import load_mvdream_model
    from vividzoo_pack.nodes.patching import patch_vividzoo
    from vividzoo_pack.vividzoo_core.cameras import moving_orbit
    from vividzoo_pack.vividzoo_core.layout import VideoLayout
    from vividzoo_pack.vividzoo_core.pipeline import VividZooPipeline

    weights = Path(weights_dir)
    folder_paths.add_model_folder_path("animatediff_models", str(weights))
    folder_paths.add_model_folder_path("vividzoo", str(weights))
    mvdream, motion, alignment = (str(weights / n) for n in
                                  ("mvdream_sd15_tiny_random.pt", "mm_v2_tiny_random.ckpt",
                                   "alignment_v2_tiny_random.safetensors"))
    layout = VideoLayout(views=4, frames=6)
    rig = moving_orbit(layout.views, layout.frames, elevation=20, turn=90)

    standalone = VividZooPipeline.from_files(mvdream, motion, alignment, "cpu", "fp32", log=lambda m: None)
    context = standalone.encode_prompts(["", "a corgi running, 3d asset"]).float()

    model, clip, _, _ = load_mvdream_model(mvdream, with_vae=False)
    motion_module = MotionModuleLoader.execute("mm_v2_tiny_random.ckpt").args[0]
    loaded_alignment = AlignmentLoader.execute("alignment_v2_tiny_random.safetensors").args[0]
    patched = patch_vividzoo(model, rig, motion_module, loaded_alignment, "linear")

    torch.manual_seed(0)
    noise = torch.randn(layout.images, 4, 8, 8)
    sampling = patched.get_model_object("model_sampling")
    timestep = 601
    sigma = sampling.sigma(torch.tensor(float(timestep)))
    captured = {}

    def one_evaluation(model_fn, x, sigmas, extra_args=None, callback=None, disable=None):
        denoised = model_fn(x, sigmas[0] * x.new_ones([x.shape[0]]), **(extra_args or {}))
        captured["eps"] = (x - denoised) / sigmas[0]
        return denoised

    def comfy_eps(cfg: float) -> torch.Tensor:
        positive = [[context[1:2], {}]]
        negative = [[context[0:1], {}]]
        comfy.sample.sample_custom(patched, noise, cfg, comfy.samplers.KSAMPLER(one_evaluation),
                                   torch.stack([sigma, torch.tensor(0.0)]), positive, negative,
                                   torch.zeros_like(noise), seed=0)
        return captured["eps"].float()

    def standalone_eps(cfg: float) -> torch.Tensor:
        x = noise * sigma / (sigma**2 + 1) ** 0.5  # ComfyUI's x = x0 + sigma * noise, scaled to the VP input
        cameras = rig.embedding_input()
        with torch.no_grad():
            eps = standalone.network(torch.cat([x, x]), torch.tensor(timestep), torch.cat([
                context[0:1].expand(layout.images, -1, -1), context[1:2].expand(layout.images, -1, -1)]),
                cameras.repeat(2, 1), layout)
        uncond, cond = eps.chunk(2)
        return uncond + cfg * (cond - uncond)

    report = {}
    for cfg in (1.0, 7.5):
        ours, reference = comfy_eps(cfg), standalone_eps(cfg)
        report[f"cfg_{cfg}"] = {
            "max_abs_diff": (ours - reference).abs().max().item(),
            "rms_rel_diff": ((ours - reference).pow(2).mean() / reference.pow(2).mean()).sqrt().item(),
            "scale": reference.abs().max().item(),
        }
    tokens = clip.tokenize("a corgi running, 3d asset")
    comfy_context = clip.encode_from_tokens(tokens).float()
    report["clip"] = {"max_abs_diff": (comfy_context - context[1:2]).abs().max().item(),
                      "scale": context.abs().max().item()}
    sigmas = sampling.sigmas.double()
    alphas_cumprod = torch.cumprod(1 - standalone_betas(), 0)
    report["sigmas_max_rel_diff"] = (
        ((sigmas - ((1 - alphas_cumprod) / alphas_cumprod).sqrt()).abs() / sigmas).max().item()
    )
    print(json.dumps(report))


def standalone_betas():
    from vividzoo_pack.vividzoo_core.schedules import make_betas

    return make_betas("linear")


if __name__ == "__main__":
    main(*sys.argv[1:4])

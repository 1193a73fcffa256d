"""The pack's loaders in a real ComfyUI v0.12.1, met by what newer cores do with them (docs/comfyui-internals.md).

Run with ComfyUI's Python: ``python newer_cores.py COMFYUI_DIR PACK_DIR WEIGHTS_DIR`` (WEIGHTS_DIR from
``write_animate3d_test_weights``). Prints one JSON line.

- Multi-GPU cloning: :func:`deepclone_multigpu` follows ``ModelPatcher.deepclone_multigpu`` of the newer cores
  (comfy/model_patcher.py, read at Comfy-Org/ComfyUI e59d85a): refuse a patcher without ``cached_patcher_init``,
  load a fresh one through it, clone onto the fresh model with empty backups, and do the same for every additional
  model (once per model). v0.12.1's ``clone`` has no ``model_override``, so the fresh model is put in after it, and
  does not copy ``cached_patcher_init``, which the newer ``clone`` does: :func:`clone_as_newer_cores` adds that.
  Each pack MODEL (Vivid-ZOO with motion modules and alignment; Animate3D) is cloned so, and the clone predicts
  the same noise as the original, with its own motion modules injected into its own UNet.
- Dynamic VRAM: ``ModelPatcherDynamic`` hands a CPU load device back to ``ModelPatcher``, so on this machine the
  dynamic branch is reached with :class:`DynamicDouble`, a ModelPatcher whose ``is_dynamic()`` is True (the one
  method core's CLIP vision loader asks).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared custom-node loader
from custom_nodes import import_custom_nodes

FRAMES, SIZE, TIMESTEP = 4, 64, 501


def deepclone_multigpu(patcher, models_cache: dict | None = None):
    """The newer cores' multi-GPU deep clone on v0.12.1's ModelPatcher (see the module docstring)."""
    init = getattr(patcher, "cached_patcher_init", None)
    if init is None:
        raise RuntimeError(f"Cannot create multigpu deepclone of {patcher.model.__class__.__name__}: "
                           "cached_patcher_init is not initialized")
    fresh = init[0](*init[1])
    if len(init) > 2:
        fresh = fresh[init[2]]
    clone = patcher.clone()
    clone.model, clone.backup, clone.object_patches_backup = fresh.model, {}, {}
    clone.cached_patcher_init = init
    models_cache = {} if models_cache is None else models_cache
    for models in clone.additional_models.values():
        for index, model in enumerate(models):
            if id(model.model) not in models_cache:
                models_cache[id(model.model)] = deepclone_multigpu(model, models_cache)
            models[index] = models_cache[id(model.model)]
    return clone


def clone_as_newer_cores(model_patcher_class) -> None:
    """Newer cores' ``ModelPatcher.clone`` passes ``cached_patcher_init`` on to the clone; v0.12.1's does not."""
    clone = model_patcher_class.clone

    def clone_keeping_init(self, *args, **kwargs):
        copy = clone(self, *args, **kwargs)
        copy.cached_patcher_init = getattr(self, "cached_patcher_init", None)
        return copy

    model_patcher_class.clone = clone_keeping_init


def main(comfy_dir: str, pack_dir: str, weights_dir: str) -> None:
    sys.path.insert(0, comfy_dir)
    from comfy.cli_args import args

    args.cpu = True
    import comfy.model_patcher
    import comfy.sample
    import comfy.samplers
    import folder_paths
    import torch

    clone_as_newer_cores(comfy.model_patcher.ModelPatcher)
    import_custom_nodes(Path(pack_dir))
    from vividzoo_pack.nodes import animate3d_model, comfy_internals
    from vividzoo_pack.nodes.animate3d import Animate3DLoader, file_image_encoder
    from vividzoo_pack.nodes.loaders import MotionModuleLoader
    from vividzoo_pack.nodes.mvdream_model import load_mvdream_model
    from vividzoo_pack.nodes.patching import KEY, patch_vividzoo
    from vividzoo_pack.vividzoo_core.animate3d_pipeline import Animate3DPipeline
    from vividzoo_pack.vividzoo_core.cameras import moving_orbit
    from vividzoo_pack.vividzoo_core.checkpoints.clip_vision import load_clip_vision
    from vividzoo_pack.vividzoo_core.network.motion_module import MotionModule
    from vividzoo_pack.vividzoo_core.synthetic_weights import synthetic_condition_views

    weights = Path(weights_dir)
    for folder in ("vividzoo", "animatediff_models", "ipadapter", "clip_vision"):
        folder_paths.add_model_folder_path(folder, str(weights))
    names = {"mvdream": "mvdream_sd15_animate3d_tiny_random.pt", "motion": "mm_v2_tiny_random.ckpt",
             "vividzoo_mvdream": "mvdream_sd15_tiny_random.pt",
             "animate3d": "animate3d_motion_modules_tiny_random.ckpt",
             "ip_adapter": "ip-adapter_sd15_tiny_random.safetensors",
             "clip_vision": "clip_vision_h_tiny_random.safetensors"}
    report: dict = {}

    # -- multi-GPU cloning of every MODEL the pack makes --------------------------------------------------------
    model = load_mvdream_model(str(weights / names["vividzoo_mvdream"]), with_clip=False, with_vae=False)[0]
    motion = MotionModuleLoader.execute(names["motion"]).args[0]
    vividzoo = patch_vividzoo(model, moving_orbit(4, FRAMES, turn=90), motion, None, "linear")
    model = load_mvdream_model(str(weights / names["mvdream"]), with_clip=False, with_vae=False)[0]
    loaded = Animate3DLoader.execute(names["animate3d"], names["ip_adapter"], names["clip_vision"]).args[0]
    views = torch.from_numpy(synthetic_condition_views(SIZE)).float() / 255
    embeddings = loaded.image_encoder.encode(views)
    with torch.no_grad():
        tokens, empty = loaded.projection(embeddings), loaded.projection(torch.zeros(1, embeddings.shape[1]))[0]
    conditions = animate3d_model.Animate3DConditions(torch.randn(4, 4, SIZE // 8, SIZE // 8), tokens, empty, 0.7)
    animate3d = animate3d_model.patch_animate3d(model, loaded, conditions)

    torch.manual_seed(0)
    noise = torch.randn(4 * FRAMES, 4, SIZE // 8, SIZE // 8)

    def prediction(patched) -> torch.Tensor:
        context = torch.randn(1, 77, patched.model.model_config.unet_config["context_dim"],
                              generator=torch.Generator().manual_seed(1))
        sigma = patched.get_model_object("model_sampling").sigma(torch.tensor(float(TIMESTEP)))
        captured = {}

        def one_evaluation(model_fn, x, sigmas, extra_args=None, callback=None, disable=None):
            captured["denoised"] = model_fn(x, sigmas[0] * x.new_ones([x.shape[0]]), **(extra_args or {}))
            return captured["denoised"]

        comfy.sample.sample_custom(patched, noise, 7.5, comfy.samplers.KSAMPLER(one_evaluation),
                                   torch.stack([sigma, torch.tensor(0.0)]), [[context, {}]],
                                   [[torch.zeros_like(context), {}]], torch.zeros_like(noise), seed=0)
        return captured["denoised"].float()

    def injected_modules(patched, key: str) -> dict:
        """Whether the clone's UNet, injected, holds exactly the clone's own motion modules."""
        own = {id(module) for module in comfy_internals.additional_patcher(patched, key).model.modules()}
        patched.inject_model()
        try:
            found = [m for m in patched.model.diffusion_model.modules() if isinstance(m, MotionModule)]
            return {"count": len(found), "all_own": bool(found) and all(id(m) in own for m in found)}
        finally:
            patched.eject_model()

    for name, patched in (("vividzoo", vividzoo), ("animate3d", animate3d)):
        clone = deepclone_multigpu(patched)
        additional = [m for models in clone.additional_models.values() for m in models]
        originals = [m for models in patched.additional_models.values() for m in models]
        report[name] = {
            "fresh_unet": clone.model is not patched.model,
            "same_unet_weights": all(torch.equal(a, b) for a, b in zip(clone.model.state_dict().values(),
                                                                        patched.model.state_dict().values())),
            "fresh_additional_models": len(additional) == len(originals) > 0 and all(
                a.model is not b.model for a, b in zip(additional, originals)),
            "injected": injected_modules(clone, KEY),
            "max_abs_diff": (prediction(clone) - prediction(patched)).abs().max().item(),
        }
    plain = comfy.model_patcher.ModelPatcher(torch.nn.Linear(1, 1), torch.device("cpu"), torch.device("cpu"))
    try:
        deepclone_multigpu(plain)
        report["refuses_plain_patcher"] = False
    except RuntimeError:
        report["refuses_plain_patcher"] = True

    # -- the CLIP image encoder under dynamic VRAM ---------------------------------------------------------------
    class DynamicDouble(comfy.model_patcher.ModelPatcher):
        def is_dynamic(self) -> bool:
            return True

    import comfy.clip_model

    checkpoint = load_clip_vision(weights / names["clip_vision"])
    shape = checkpoint.shape
    config = {"hidden_size": shape.width, "intermediate_size": shape.intermediate, "num_hidden_layers": shape.layers,
              "num_attention_heads": shape.heads, "patch_size": shape.patch, "image_size": shape.image_size,
              "projection_dim": shape.projection, "hidden_act": "gelu", "model_type": "clip_vision_model",
              "num_channels": 3}

    def build(dtype, offload):
        return comfy.clip_model.CLIPVisionModelProjection(config, dtype, offload, comfy.ops.manual_cast)

    def shares(model_) -> list[bool]:
        weights_by_name = checkpoint.weights
        return [param.data_ptr() == weights_by_name[name].data_ptr() for name, param in model_.named_parameters()
                if name in weights_by_name]

    standalone = Animate3DPipeline.from_files(*(weights / names[k] for k in ("mvdream", "animate3d", "clip_vision",
                                                                             "ip_adapter")), device="cpu", dtype="fp32")
    reference = standalone.image_embeddings(views)
    core_patcher = comfy.model_patcher.CoreModelPatcher
    for label, patcher_class in (("plain", core_patcher), ("dynamic", DynamicDouble)):
        comfy.model_patcher.CoreModelPatcher = patcher_class
        try:
            clip_model, patcher, missing, unexpected = comfy_internals.clip_vision_model(build, checkpoint.weights)
            encoder = file_image_encoder(str(weights / names["clip_vision"]), shape.projection, "the test IP-Adapter")
            encoded = encoder.encode(views)
        finally:
            comfy.model_patcher.CoreModelPatcher = core_patcher
        shared = shares(clip_model)
        report[f"clip_vision_{label}"] = {
            "patcher": type(patcher).__name__, "missing": len(missing), "unexpected": len(unexpected),
            "parameters": len(shared), "assigned": sum(shared),
            "max_abs_diff": (encoded - reference).abs().max().item(), "scale": reference.abs().max().item()}
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:4])

"""Records equality fixtures from Animate3D's ORIGINAL code (yanqinJiang/Animate3D), on the CPU, tiny random weights.

Not shipped, not run by the tests: the fixtures it writes (tests/data/animate3d/) are. Run it in a separate
environment with the original's pins (see tests/reference/README.md):

    /path/to/refenv/bin/python tests/reference/record_animate3d.py --source /path/to/Animate3D \
        --source-commit <sha> --out tests/data/animate3d

What it does, in order:
1. Writes tiny random files in the layouts users download, with ``vividzoo_core.synthetic_weights``
   (MVDream ``.pt``, ``mm_sd_v15_v2``-layout ``.ckpt``, ``ip-adapter_sd15.bin``, a CLIP image encoder in
   Hugging Face layout, ``animate3d_motion_modules.ckpt`` in its modules-only form). Every tensor is random.
2. Converts them as the original expects: the MVDream UNet/VAE to diffusers 0.28 models (diffusers' own
   LDM converters; ``camera_embed`` -> ``camera_embedding``, as the authors' mvdream-sd1.5-diffusers has
   it), the motion module to a ``MotionAdapter`` (the renames of diffusers' conversion script), the IP-Adapter
   and image encoder into a local folder shaped like h94/IP-Adapter, read by the original ``load_ip_adapter``.
3. Assembles the model with the steps of the original ``inference.py`` ``main()`` (repeated here line for line,
   since ``main()`` downloads from the Hub): ``MVUNetMotionModel.from_unet2d``, ``_load_ip_adapter_weights``,
   the processor swap, ``pos_embed = None``, ``load_state_dict`` with the original's 0-or-726 assertion.
4. Runs the original ``AnimateDiffMVI2VPipeline`` for one guided DDIM step (stopped by its own step callback)
   and records the UNet forward (inputs and output) and the latents after the step; records FreeInit's
   Butterworth filter and frequency mixing from the original ``FreeInitMixin``; records ``get_camera`` and the
   scheduler; at 64 px also a whole short run (3 steps, 2 FreeInit iterations) to its final latents.
5. ``ip_scale.safetensors``: the 64 px step again with the IP-Adapter processors built at scale :data:`IP_SCALE`
   (``--only-ip-scale`` writes just this file).

Stubs and patches (the only ones):
- ``xformers.ops.memory_efficient_attention`` is replaced by exact softmax attention in PyTorch (chunked over
  the batch so it fits in memory); every call the original makes passes ``attn_bias=None``.
- ``torch.baddbmm(input, a, b, beta=0, alpha=s)`` is computed as ``s * torch.bmm(a, b)``, its documented value.
  diffusers' ``Attention.get_attention_scores`` (the temporal attention of the motion modules) calls it with
  ``beta=0``; torch 1.13's CPU kernel for small matrices multiplies its uninitialised result buffer by ``beta``
  instead of ignoring it, so garbage left in reused memory turns into NaN (seen at 256 px: the whole output
  NaN; not in a fresh process, where new memory is zeros). CUDA, where the authors ran, ignores it.
- On torch >= 2 ``torch.nn.functional.scaled_dot_product_attention`` is removed before the model is built, so
  diffusers takes the torch-1.13 path the original was written for (``IPAdapterAttnProcessor``, which
  ``inference.py`` swaps for its xformers processor; on torch 2 the swap is silently skipped and the
  original's load assertion fails). With torch 1.13.1 (recommended) nothing is removed.
- For the second size the spatial-attention ``feature_size`` is computed from the real width instead of the
  256 px ``inference.py`` hard-codes (the 64 px fixture); the 256 px fixture runs the original unpatched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
SIZES = {  # fixture name: (pixels, frames, condition-image pixels)
    "256px": (256, 3, 512),
    "64px": (64, 5, 64),
}
SEED = 8673  # configs/inference/inference.yaml
PROMPT_SEED = 11
IP_SCALE = 0.5  # the extra fixture (ip_scale.safetensors): the 64 px step at an IP-Adapter scale other than 1


def install_xformers_stub() -> None:
    """``xformers.ops.memory_efficient_attention`` as exact softmax attention (inputs ``(batch*heads, L, d)``)."""

    def memory_efficient_attention(query, key, value, attn_bias=None, op=None, scale=None):
        assert attn_bias is None, "the original passes no attention bias"
        scale = query.shape[-1] ** -0.5 if scale is None else scale
        chunk = max(1, (64 << 20) // max(1, query.shape[1] * key.shape[1]))
        outputs = []
        for start in range(0, query.shape[0], chunk):
            q, k, v = (t[start : start + chunk] for t in (query, key, value))
            weights = torch.softmax(torch.bmm(q, k.transpose(1, 2)) * scale, dim=-1)
            outputs.append(torch.bmm(weights, v))
        return torch.cat(outputs)

    package = types.ModuleType("xformers")
    ops = types.ModuleType("xformers.ops")
    ops.memory_efficient_attention = memory_efficient_attention
    package.ops = ops
    sys.modules["xformers"], sys.modules["xformers.ops"] = package, ops


def install_baddbmm_fix() -> None:
    """``beta=0`` means the input is ignored: compute ``alpha * (a @ b)`` with ``bmm`` (see above)."""
    original = torch.baddbmm

    def baddbmm(input, batch1, batch2, *, beta=1, alpha=1, out=None):
        if beta == 0 and out is None:
            return alpha * torch.bmm(batch1, batch2)
        return original(input, batch1, batch2, beta=beta, alpha=alpha, out=out)

    torch.baddbmm = baddbmm


def prompt_embeddings(width: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(PROMPT_SEED)
    return torch.randn(1, 77, width, generator=generator), torch.randn(1, 77, width, generator=generator)


def tensor_checksums(state: dict) -> dict[str, list[float]]:
    """Per file: (sum, sum of squares) in float64, to detect regenerated weights that differ."""
    flat = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        elif isinstance(value, torch.Tensor):
            flat[prefix[:-1]] = value

    walk("", state)
    values = [t.double() for t in flat.values() if t.is_floating_point()]
    return [float(sum(t.sum() for t in values)), float(sum((t * t).sum() for t in values))]


class Original:
    """Animate3D's model and pipeline assembled as ``inference.py`` does, from the tiny files."""

    def __init__(self, files, folder: Path, frames: int, sample_size: int, ip_scale: float | None = None) -> None:
        from animatediff.models.attention_processor import (
            IPAdapterXFormersAttnProcessor,
            MVDreamI2VXFormersAttnProcessor,
            MVDreamXFormersAttnProcessor,
            SpatioTemporalI2VXFormersAttnProcessor,
        )
        from animatediff.models.unet_motion_mv_model import MVUNetMotionModel
        from animatediff.pipelines.pipeline import AnimateDiffMVI2VPipeline
        from animatediff.utils.util import load_ip_adapter
        from diffusers import DDIMScheduler
        from diffusers.models.attention_processor import IPAdapterAttnProcessor
        from omegaconf import OmegaConf

        config = OmegaConf.load(ARGS.source / "configs" / "inference" / "inference.yaml")
        num_views, video_length = 4, frames
        noise_scheduler = DDIMScheduler(**OmegaConf.to_container(config.noise_scheduler_kwargs))
        vae = build_vae(files.mvdream)
        mvunet = build_mvunet(files.mvdream)
        motion_adapter = build_motion_adapter(files.motion)
        unet = MVUNetMotionModel.from_unet2d(mvunet, motion_adapter)

        ip_adapter_state_dict, ip_feature_extractor, ip_image_encoder = load_ip_adapter(
            str(folder), subfolder="models", weight_name="ip-adapter_sd15.bin", device=vae.device, dtype=vae.dtype
        )
        unet._load_ip_adapter_weights(ip_adapter_state_dict)

        # inference.py: "sample_size = 256" (hard-coded) before sizing the spatial attention.
        feature_height = sample_size // 8
        downsampled_sizes = [feature_height]
        for _ in range(len(unet.down_blocks) - 1):
            feature_height //= 2
            downsampled_sizes.append(feature_height)

        attn_procs = {}
        for attn_processor_name, attn_processor in unet.attn_processors.items():
            if "motion_modules" in attn_processor_name:
                if attn_processor_name.startswith("mid_block"):
                    hidden_size = unet.config.block_out_channels[-1]
                    feature_size = downsampled_sizes[-1]
                elif attn_processor_name.startswith("up_blocks"):
                    block_id = int(attn_processor_name[len("up_blocks.")])
                    hidden_size = list(reversed(unet.config.block_out_channels))[block_id]
                    feature_size = downsampled_sizes[-(block_id + 1)]
                else:
                    block_id = int(attn_processor_name[len("down_blocks.")])
                    hidden_size = unet.config.block_out_channels[block_id]
                    feature_size = downsampled_sizes[block_id]
                cfg = config.motion_module_attn_cfg
                attn_procs[attn_processor_name] = SpatioTemporalI2VXFormersAttnProcessor(
                    hidden_size=hidden_size, feature_size=feature_size, num_views=num_views, num_frames=video_length,
                    spatial_attn=cfg.spatial_attn, image_attn=cfg.image_attn, use_alpha_blender=cfg.use_alpha_blender)
            elif type(attn_processor) is IPAdapterAttnProcessor:
                weights = {"to_k_ip.0.weight": attn_processor.to_k_ip[0].weight,
                           "to_v_ip.0.weight": attn_processor.to_v_ip[0].weight}
                attn_procs[attn_processor_name] = IPAdapterXFormersAttnProcessor(
                    hidden_size=attn_processor.hidden_size, cross_attention_dim=attn_processor.cross_attention_dim,
                    num_tokens=attn_processor.num_tokens,
                    scale=attn_processor.scale if ip_scale is None else ip_scale)  # None: 1.0, as inference.py
                attn_procs[attn_processor_name].load_state_dict(weights)
            elif config.mvdream_attn_cfg.image_attn.enabled:
                attn_module = unet
                for n in attn_processor_name.split(".")[:-1]:
                    attn_module = getattr(attn_module, n)
                hidden_size = attn_module.to_out[0].out_features
                weights = {"to_q_i2v.weight": attn_module.to_q.weight,
                           "to_out_i2v.weight": torch.zeros_like(attn_module.to_out[0].weight),
                           "to_out_i2v.bias": torch.zeros_like(attn_module.to_out[0].bias)}
                attn_procs[attn_processor_name] = MVDreamI2VXFormersAttnProcessor(
                    hidden_size=hidden_size, num_views=num_views, num_frames=video_length)
                attn_procs[attn_processor_name].load_state_dict(weights)
            else:
                attn_procs[attn_processor_name] = MVDreamXFormersAttnProcessor(num_frames=video_length)
        self.processor_types = sorted({type(p).__name__ for p in attn_procs.values()})
        unet.set_attn_processor(attn_procs)

        for i in range(len(unet.down_blocks)):
            for j in range(2):
                unet.down_blocks[i].motion_modules[j].transformer_blocks[0].pos_embed = None
        unet.mid_block.motion_modules[0].transformer_blocks[0].pos_embed = None
        for i in range(len(unet.up_blocks)):
            for j in range(3):
                unet.up_blocks[i].motion_modules[j].transformer_blocks[0].pos_embed = None

        unet_checkpoint_loaded = torch.load(files.modules, map_location="cpu")
        state_dict = (
            unet_checkpoint_loaded["state_dict"] if "state_dict" in unet_checkpoint_loaded else unet_checkpoint_loaded
        )
        m, u = unet.load_state_dict(state_dict, strict=False)
        assert len(m) == 0 or len(m) == 726, (
            "missing keys should be 0 (save full model) or 726 (save motion modules only)"
        )
        assert len(u) == 0, "file is broken!"
        self.missing = sorted(m)

        pipeline = AnimateDiffMVI2VPipeline(
            unet=unet, vae=vae, tokenizer=None, text_encoder=None, scheduler=noise_scheduler, motion_adapter=None,
            feature_extractor=ip_feature_extractor, image_encoder=ip_image_encoder)
        pipeline.vae.eval()
        pipeline.unet.eval()
        pipeline.enable_vae_slicing()
        self.pipeline, self.unet, self.config = pipeline, unet, config

    def one_step(self, pixels: int, frames: int, images: np.ndarray) -> dict[str, torch.Tensor]:
        """One guided DDIM step of the original pipeline (25-step schedule, CFG 7.5), seeded as inference.py seeds."""
        from PIL import Image

        class Stop(Exception):
            pass

        record: dict[str, torch.Tensor] = {}

        def capture(module, args, kwargs, output):
            if "unet_output" not in record:
                record["unet_sample"] = args[0].clone()
                record["unet_timestep"] = torch.as_tensor(args[1]).clone()
                record["unet_context"] = kwargs["encoder_hidden_states"].clone()
                record["unet_camera"] = kwargs["camera"].clone()
                record["unet_image_embeds"] = kwargs["added_cond_kwargs"]["image_embeds"].clone()
                record["unet_output"] = output.sample.clone()

        def stop(pipe, step, timestep, callback_kwargs):
            record["latents_after_step"] = callback_kwargs["latents"].clone()
            raise Stop

        handle = register_forward_hook_with_kwargs(self.unet, capture)
        positive, negative = prompt_embeddings(self.unet.config.cross_attention_dim)
        torch.manual_seed(SEED)
        try:
            self.pipeline(
                prompt_embeds=positive, negative_prompt_embeds=negative,
                num_inference_steps=self.config.steps, guidance_scale=self.config.guidance_scale,
                width=pixels, height=pixels, num_frames=frames, num_videos_per_prompt=4,
                ip_adapter_image=[Image.fromarray(view) for view in images], output_type="latent",
                i2v_cond_time_zero=self.config.i2v_cond_time_zero, i2v_similarity_init=self.config.i2v_similarity_init,
                callback_on_step_end=stop,
            )
        except Stop:
            pass
        handle.remove()
        return record

    def short_run(
        self, pixels: int, frames: int, images: np.ndarray, steps: int, free_init_iterations: int
    ) -> torch.Tensor:
        """A whole (short) sampling run of the original pipeline with FreeInit: the final latents."""
        from PIL import Image

        self.pipeline.enable_free_init(method="butterworth", num_iters=free_init_iterations, use_fast_sampling=False)
        positive, negative = prompt_embeddings(self.unet.config.cross_attention_dim)
        torch.manual_seed(SEED)
        latents = self.pipeline(
            prompt_embeds=positive, negative_prompt_embeds=negative, num_inference_steps=steps,
            guidance_scale=self.config.guidance_scale, width=pixels, height=pixels, num_frames=frames,
            num_videos_per_prompt=4, ip_adapter_image=[Image.fromarray(view) for view in images], output_type="latent",
            i2v_cond_time_zero=self.config.i2v_cond_time_zero, i2v_similarity_init=self.config.i2v_similarity_init,
        ).frames
        self.pipeline.disable_free_init()
        return latents


def register_forward_hook_with_kwargs(module, hook):
    """torch 1.13 hooks see no keyword arguments: wrap ``forward`` instead."""
    original = module.forward

    def forward(*args, **kwargs):
        output = original(*args, **kwargs)
        hook(module, args, kwargs, output)
        return output

    module.forward = forward
    return types.SimpleNamespace(remove=lambda: setattr(module, "forward", original))


def build_mvunet(path: Path):
    from animatediff.models.unet_mv_model import MVUNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    from vividzoo_core.diffusers_host.unet import unet_config
    from vividzoo_core.synthetic_weights import TINY_ANIMATE3D

    config = unet_config(TINY_ANIMATE3D.unet)
    renamed = {
        k.replace("camera_embed.", "label_emb.0.", 1): v
        for k, v in mvdream_part(path, "model.diffusion_model.").items()
    }
    renamed = {"model.diffusion_model." + k: v for k, v in renamed.items()}
    converted = convert_ldm_unet_checkpoint(renamed, config)
    converted = {k.replace("class_embedding.", "camera_embedding.", 1): v for k, v in converted.items()}
    for key in ("class_embed_type", "projection_class_embeddings_input_dim"):
        config.pop(key)
    model = MVUNet2DConditionModel(**config, camera_embedding_dim=16)
    model.load_state_dict(converted, strict=True)
    return model.eval()


def build_vae(path: Path):
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    from vividzoo_core.synthetic_weights import TINY_ANIMATE3D

    shape = TINY_ANIMATE3D.vae
    levels = len(shape.channel_mult)
    config = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * levels,
                  up_block_types=["UpDecoderBlock2D"] * levels, block_out_channels=list(shape.block_channels),
                  layers_per_block=shape.num_res_blocks, latent_channels=shape.latent_channels, norm_num_groups=32,
                  scaling_factor=shape.scaling_factor)
    model = AutoencoderKL(**config)
    model.load_state_dict(convert_ldm_vae_checkpoint(mvdream_part(path, "first_stage_model."), config), strict=True)
    return model.eval()


def mvdream_part(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    """One part of the MVDream release file, prefix removed (torch 1.13 reads it with a plain torch.load)."""
    state = torch.load(path, map_location="cpu")
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def build_motion_adapter(path: Path):
    """diffusers' scripts/convert_animatediff_motion_module_to_diffusers.py renames, into a MotionAdapter."""
    from diffusers import MotionAdapter

    from vividzoo_core.synthetic_weights import TINY_ANIMATE3D

    original = torch.load(path, map_location="cpu")
    converted = {}
    for k, v in original.items():
        if "pos_encoder" in k:
            continue
        converted[k.replace(".norms.0", ".norm1").replace(".norms.1", ".norm2").replace(".ff_norm", ".norm3")
                  .replace(".attention_blocks.0", ".attn1").replace(".attention_blocks.1", ".attn2")
                  .replace(".temporal_transformer", "")] = v
    adapter = MotionAdapter(block_out_channels=TINY_ANIMATE3D.unet.block_channels, motion_layers_per_block=2,
                            motion_mid_block_layers_per_block=1, motion_num_attention_heads=8,
                            motion_norm_num_groups=32, motion_max_seq_length=32, use_motion_mid_block=True)
    missing, unexpected = adapter.load_state_dict(converted, strict=False)
    assert not unexpected and all(k.endswith("pos_embed.pe") for k in missing), (missing[:3], unexpected[:3])
    return adapter


def ip_adapter_folder(files, folder: Path) -> Path:
    """A local folder shaped like h94/IP-Adapter: models/ip-adapter_sd15.bin and models/image_encoder/."""
    from safetensors.torch import load_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from vividzoo_core.checkpoints.clip_vision import load_clip_vision

    (folder / "models").mkdir(parents=True, exist_ok=True)
    shutil.copy(files.ip_adapter_bin, folder / "models" / "ip-adapter_sd15.bin")
    shape = load_clip_vision(files.clip_vision).shape
    config = CLIPVisionConfig(hidden_size=shape.width, intermediate_size=shape.intermediate,
                              num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                              image_size=shape.image_size, patch_size=shape.patch, projection_dim=shape.projection,
                              hidden_act="gelu", layer_norm_eps=1e-5)
    model = CLIPVisionModelWithProjection(config)
    missing, unexpected = model.load_state_dict(load_file(str(files.clip_vision)), strict=False)
    assert not unexpected and set(missing) <= {"vision_model.embeddings.position_ids"}, (missing, unexpected)
    model.save_pretrained(folder / "models" / "image_encoder")
    return folder


def record_free_init(original: Original) -> dict[str, torch.Tensor]:
    """The original FreeInitMixin: the Butterworth filter at 256 px / 16 frames, and 3 iterations of mixing."""
    from animatediff.pipelines.pipeline import AnimateDiffMVI2VPipeline  # noqa: F401 (FreeInitMixin is its base)

    pipeline = original.pipeline
    pipeline.enable_free_init(
        method="butterworth", num_iters=original.config.freeinit_num_iters, use_fast_sampling=False
    )
    pipeline.scheduler.set_timesteps(original.config.steps)
    filter_256 = pipeline._get_free_init_freq_filter((1, 4, 15, 32, 32), "cpu", "butterworth", 4, 0.25, 0.25)
    assert torch.equal(filter_256[0, 0], filter_256[0, 3])
    generator = torch.Generator().manual_seed(21)
    shape = (4, 4, 4, 8, 8)  # (views, channels, frames - 1, h, w) as the pipeline passes latents[:, :, 1:]
    initial = torch.randn(shape, generator=generator)
    denoised = [torch.randn(shape, generator=generator) for _ in range(2)]
    mixing = torch.Generator().manual_seed(22)
    out0, _ = pipeline._apply_free_init(initial, 0, 25, torch.device("cpu"), torch.float32, mixing)
    assert torch.equal(out0, initial)
    out1, _ = pipeline._apply_free_init(denoised[0], 1, 25, torch.device("cpu"), torch.float32, mixing)
    out2, _ = pipeline._apply_free_init(denoised[1], 2, 25, torch.device("cpu"), torch.float32, mixing)
    pipeline.disable_free_init()
    return {"filter_256px_16frames": filter_256[0, 0].contiguous(), "initial": initial, "denoised_1": denoised[0],
            "denoised_2": denoised[1], "mixed_1": out1, "mixed_2": out2}


def misgrouping_demo() -> dict:
    """The original spatial attention sized for 256 px, fed 512 px features (64x64 latents at level 0)."""
    from animatediff.models.attention_processor import (
        SpatioTemporalI2VXFormersAttnProcessor,
    )
    from diffusers.models.attention_processor import Attention
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(ARGS.source / "configs" / "inference" / "inference.yaml").motion_module_attn_cfg
    torch.manual_seed(3)
    attention = Attention(32, heads=8, dim_head=4)
    outputs = {}
    for name, feature_size in (("sized_for_256px", 32), ("sized_for_512px", 64)):
        torch.manual_seed(4)
        processor = SpatioTemporalI2VXFormersAttnProcessor(hidden_size=32, feature_size=feature_size, num_views=4,
                                                           num_frames=2, spatial_attn=cfg.spatial_attn,
                                                           image_attn=cfg.image_attn, use_alpha_blender=True)
        hidden = torch.randn(4 * 64 * 64, 2, 32, generator=torch.Generator().manual_seed(5))
        outputs[name] = processor(attention, hidden)
    return {"runs_without_error": True,
            "max_difference": float((outputs["sized_for_256px"] - outputs["sized_for_512px"]).abs().max())}


def record_ip_scale(files, folder: Path, meta: dict, out: Path) -> None:
    """``ip_scale.safetensors``: the 64 px guided step with the original's IP-Adapter processors built at scale
    :data:`IP_SCALE` (their ``scale`` argument; ``inference.py`` leaves it at 1.0). Its run description, the weights'
    checksums included, is the file's metadata."""
    from safetensors.torch import save_file

    from vividzoo_core.synthetic_weights import synthetic_condition_views

    pixels, frames, condition_pixels = SIZES["64px"]
    original = Original(files, folder, frames, pixels, ip_scale=IP_SCALE)
    scales = {tuple(p.scale) for p in original.unet.attn_processors.values() if hasattr(p, "to_k_ip")}
    assert scales == {(IP_SCALE,)}, scales
    record = original.one_step(pixels, frames, synthetic_condition_views(condition_pixels))
    described = {**{k: meta[k] for k in ("source", "source_commit", "versions", "torch_2_path_forced_to_1_13",
                                         "seed", "prompt_seed", "file_checksums")},
                 "ip_scale": IP_SCALE, "size": "64px", "pixels": pixels, "frames": frames,
                 "condition_pixels": condition_pixels}
    save_file({f"64px.{k}": v.contiguous() for k, v in record.items()}, str(out / "ip_scale.safetensors"),
              metadata={"description": json.dumps(described)})
    print(f"wrote {out / 'ip_scale.safetensors'} (ip_scale {IP_SCALE})")


def main() -> None:
    import diffusers
    import transformers
    from safetensors.torch import save_file

    from vividzoo_core.synthetic_weights import (
        TINY_ANIMATE3D,
        animate3d_spec,
        motion_state_dict,
        synthetic_condition_views,
        write_animate3d_test_weights,
    )

    forced = False
    if hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        del torch.nn.functional.scaled_dot_product_attention
        forced = True
    install_xformers_stub()
    install_baddbmm_fix()
    sys.path.insert(0, str(ARGS.source))
    out = ARGS.out
    out.mkdir(parents=True, exist_ok=True)
    meta: dict = {
        "source": "yanqinJiang/Animate3D", "source_commit": ARGS.source_commit,
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__, "python": sys.version.split()[0]},
        "torch_2_path_forced_to_1_13": forced, "seed": SEED, "prompt_seed": PROMPT_SEED,
        "sizes": {name: {"pixels": p, "frames": f, "condition_pixels": c} for name, (p, f, c) in SIZES.items()},
    }
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        files = write_animate3d_test_weights(scratch / "weights", full_form=False)
        meta["file_checksums"] = {name: tensor_checksums(torch.load(getattr(files, name), map_location="cpu"))
                                  for name in ("mvdream", "motion", "ip_adapter_bin", "modules")}
        from safetensors.torch import load_file
        meta["file_checksums"]["clip_vision"] = tensor_checksums(load_file(str(files.clip_vision)))
        folder = ip_adapter_folder(files, scratch / "IP-Adapter")
        record_ip_scale(files, folder, meta, out)
        if ARGS.only_ip_scale:
            return
        tensors: dict[str, torch.Tensor] = {}
        for name, (pixels, frames, condition_pixels) in SIZES.items():
            sample_size = 256 if name == "256px" else pixels  # the second size: feature size from the real width
            original = Original(files, folder, frames, sample_size)
            meta[f"processors_{name}"] = original.processor_types
            record = original.one_step(pixels, frames, synthetic_condition_views(condition_pixels))
            tensors.update({f"{name}.{k}": v.contiguous() for k, v in record.items()})
            if name == "64px":
                scheduler = original.pipeline.scheduler
                meta["scheduler"] = {"class": type(scheduler).__name__, **{
                    k: v for k, v in scheduler.config.items() if not k.startswith("_") and k != "trained_betas"}}
                scheduler.set_timesteps(original.config.steps)
                meta["scheduler"]["timesteps_25"] = scheduler.timesteps.tolist()
                meta["scheduler"]["final_alpha_cumprod"] = float(scheduler.final_alpha_cumprod)
                meta["missing_keys_modules_only_form"] = len(original.missing)
                full = original.unet.state_dict()
                meta["full_form_keys"] = {k: list(v.shape) for k, v in full.items()}
                trained = {k for k in full if "motion_modules." in k or "i2v." in k}
                ours = set(animate3d_spec(TINY_ANIMATE3D.unet))
                assert trained == ours, (sorted(trained - ours)[:5], sorted(ours - trained)[:5])
                assert set(full) - trained == set(original.missing)
                # The base motion module is overwritten in full: another one gives the same output.
                other = scratch / "other_motion.ckpt"
                torch.save(motion_state_dict("v2", TINY_ANIMATE3D.unet.block_channels, seed=99, all_random=True), other)
                again = Original(type(files)(**{**files.__dict__, "motion": other}), folder, frames, sample_size)
                repeat = again.one_step(pixels, frames, synthetic_condition_views(condition_pixels))
                meta["base_motion_module_changes_output"] = not torch.equal(
                    repeat["unet_output"], record["unet_output"]
                )
                tensors.update({f"freeinit.{k}": v for k, v in record_free_init(original).items()})
                tensors["64px.short_run_3_steps_2_free_init"] = original.short_run(
                    pixels, frames, synthetic_condition_views(condition_pixels), steps=3, free_init_iterations=2)
        from animatediff.pipelines.pipeline import get_camera
        tensors["camera.get_camera_4"] = get_camera(4).contiguous()
        meta["get_camera_8_rows"] = get_camera(8).shape[0]
        meta["misgrouping_demo_512px_with_256px_sizing"] = misgrouping_demo()
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "fixtures.safetensors"))
    print(
        f"wrote {out / 'fixtures.safetensors'} ({(out / 'fixtures.safetensors').stat().st_size / 1e6:.2f} MB) "
        "and meta.json"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="an Animate3D source tree")
    parser.add_argument("--source-commit", default="unknown", help="its commit, written into meta.json")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "animate3d")
    parser.add_argument("--only-ip-scale", action="store_true",
                        help="write only ip_scale.safetensors (about a minute), not fixtures.safetensors/meta.json")
    ARGS = parser.parse_args()
    sys.path.insert(0, str(REPO))
    main()

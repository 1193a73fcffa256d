"""Key layouts of every supported file format, and proof that no tensor is dropped unnoticed."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from vividzoo_core.checkpoints import (
    alignment_checkpoint,
    inspect_checkpoint,
    load_alignment,
    load_motion_module,
    load_mvdream,
    save_alignment,
)
from vividzoo_core.checkpoints.mvdream import SCHEDULE_BUFFERS
from vividzoo_core.diffusers_host import build_text_encoder, build_unet, build_vae
from vividzoo_core.errors import CheckpointError
from vividzoo_core.network import MotionModuleSet
from vividzoo_core.synthetic_weights import (
    FULL_SD15,
    TINY_SD15,
    clip_text_spec,
    motion_module_spec,
    motion_state_dict,
    mvdream_unet_spec,
    parameter_count,
    vae_spec,
)


def test_full_size_layouts_match_the_released_files():
    # SD 1.5 has 686 UNet tensors (+4 for MVDream's camera MLP), 248 VAE and 197 CLIP tensors.
    assert len(mvdream_unet_spec(FULL_SD15.unet)) == 686 + 4
    assert len(vae_spec(FULL_SD15.vae)) == 248
    assert len(clip_text_spec(FULL_SD15.text)) == 197
    no_pe = lambda key: key.endswith("pos_encoder.pe")  # noqa: E731
    assert round(parameter_count(motion_module_spec("v2", FULL_SD15.unet.block_channels), no_pe) / 1e6, 1) == 453.2
    for version in ("v1", "v3"):
        assert (
            round(parameter_count(motion_module_spec(version, FULL_SD15.unet.block_channels), no_pe) / 1e6, 1) == 417.1
        )


def test_alignment_layers_have_the_papers_parameter_count():
    modules = MotionModuleSet(
        {site.rsplit(".temporal_transformer", 1)[0]: shape[0]
         for site, (shape, _) in motion_module_spec("v2", FULL_SD15.unet.block_channels).items()
         if site.endswith("temporal_transformer.norm.weight")},
        pe_length=32, version="v2", ops=_MetaOps,
    )
    assert len(list(modules.sites())) == 21
    count = sum(p.numel() for p in modules.alignment_parameters())
    assert round(count / 1e6, 1) == 41.2


class _MetaOps:
    """torch.nn layers on the meta device: counts parameters of the full-size network without memory."""

    @staticmethod
    def Linear(*args, **kwargs):
        return torch.nn.Linear(*args, device="meta", **kwargs)

    @staticmethod
    def GroupNorm(*args, **kwargs):
        return torch.nn.GroupNorm(*args, device="meta", **kwargs)

    @staticmethod
    def LayerNorm(*args, **kwargs):
        return torch.nn.LayerNorm(*args, device="meta", **kwargs)


@pytest.mark.parametrize("family_file", ["mvdream", "mvdream_sd21"])
def test_mvdream_every_tensor_is_used_or_set_aside(weights, family_file):
    path = getattr(weights, family_file)
    raw = torch.load(path, weights_only=True)
    checkpoint = load_mvdream(path)
    used = len(checkpoint.unet) + len(checkpoint.vae) + len(checkpoint.text_encoder)
    assert used + len(checkpoint.set_aside) == len(raw)
    assert SCHEDULE_BUFFERS <= set(checkpoint.set_aside)
    # Every used tensor really loads: strict loads after one-to-one conversion.
    build_unet(checkpoint), build_vae(checkpoint), build_text_encoder(checkpoint)


def test_mvdream_families_are_told_apart(weights):
    sd15, sd21 = load_mvdream(weights.mvdream), load_mvdream(weights.mvdream_sd21)
    assert (sd15.family, sd15.text_shape.kind, sd15.unet_shape.linear_projection) == ("sd15", "clip", False)
    assert (sd21.family, sd21.text_shape.kind, sd21.unet_shape.linear_projection) == ("sd21", "open_clip", True)
    assert sd15.unet_shape == TINY_SD15.unet
    # SD 2.1 conditions on the penultimate OpenCLIP layer: the last one is set aside, with its reason.
    last = f"cond_stage_model.model.transformer.resblocks.{sd21.text_shape.layers - 1}.ln_1.weight"
    assert "penultimate" in sd21.set_aside[last]
    assert "cond_stage_model.transformer.text_model.embeddings.position_ids" in sd15.set_aside


def test_unet_only_file_is_recognised(weights):
    checkpoint = load_mvdream(weights.mvdream_unet_only)
    assert checkpoint.vae is None and checkpoint.text_encoder is None
    assert len(checkpoint.unet) == len(mvdream_unet_spec(TINY_SD15.unet))
    build_unet(checkpoint)
    with pytest.raises(ValueError, match="UNet-only MVDream file"):
        checkpoint.require_full()


def test_camera_mlp_saved_under_the_adm_name_is_read_back(tmp_path, weights):
    raw = torch.load(weights.mvdream, weights_only=True)
    renamed = {k.replace("camera_embed.", "label_emb.0."): v for k, v in raw.items()}
    path = tmp_path / "from_comfy.safetensors"
    save_file({k: v.contiguous() for k, v in renamed.items()}, str(path))
    assert set(load_mvdream(path).unet) == set(load_mvdream(weights.mvdream).unet)


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_motion_module_versions_and_layout(weights, version):
    checkpoint = load_motion_module(weights.motion[version])
    assert checkpoint.version == version
    assert checkpoint.max_frames == {"v1": 24, "v2": 32, "v3": 32}[version]
    assert len(checkpoint.channels) == (21 if version == "v2" else 20)
    assert len(checkpoint.weights) == len(motion_module_spec(version, TINY_SD15.unet.block_channels))
    assert not checkpoint.set_aside
    modules = MotionModuleSet.from_checkpoint(checkpoint)
    state = modules.state_dict()
    for key, tensor in checkpoint.weights.items():
        assert torch.equal(state[key], tensor), key


def test_motion_module_from_the_training_script_is_unwrapped(tmp_path):
    weights = motion_state_dict("v2", TINY_SD15.unet.block_channels)
    wrapped = {f"module.{k}": v for k, v in weights.items()}
    wrapped["module.down_blocks.0.resnets.0.conv1.weight"] = torch.zeros(32, 32, 3, 3)
    path = tmp_path / "trained.ckpt"
    torch.save({"state_dict": wrapped, "global_step": 1000, "animatediff_config": {"pe": 32}}, path)
    checkpoint = load_motion_module(path)
    assert checkpoint.version == "v2" and set(checkpoint.weights) == set(weights)
    assert "module.down_blocks.0.resnets.0.conv1.weight" in checkpoint.set_aside
    assert {"global_step", "animatediff_config"} <= set(checkpoint.set_aside)


def test_alignment_round_trip_and_metadata(tmp_path, weights):
    motion = load_motion_module(weights.motion["v2"])
    modules = MotionModuleSet.from_checkpoint(motion)
    for parameter in modules.alignment_parameters():
        torch.nn.init.normal_(parameter)
    state = modules.alignment_state_dict()
    assert len(state) == 21 * 4
    path = save_alignment(alignment_checkpoint(state, "v2", {"steps": 7}), tmp_path / "a.safetensors")
    loaded = load_alignment(path)
    assert loaded.motion_version == "v2" and loaded.channels == motion.channels and loaded.info == {"steps": 7}
    for key, tensor in state.items():
        assert torch.equal(loaded.weights[key], tensor)
    loaded.check_fits(motion.version, motion.channels)
    fresh = MotionModuleSet.from_checkpoint(motion)
    fresh.load_alignment(loaded.weights)
    assert all(torch.equal(fresh.alignment_state_dict()[k], v) for k, v in state.items())


def test_inspect_reports_each_kind(weights):
    assert inspect_checkpoint(weights.mvdream)["kind"] == "mvdream"
    report = inspect_checkpoint(weights.motion["v2"])
    assert (report["kind"], report["version"], report["max_frames"], report["modules"]) == (
        "motion_module",
        "v2",
        32,
        21,
    )
    report = inspect_checkpoint(weights.alignment)
    assert (report["kind"], report["motion_module_version"], report["modules"]) == ("alignment", "v2", 21)
    # two Linear(C, C) layers with biases per module
    channels = load_motion_module(weights.motion["v2"]).channels.values()
    assert report["parameters"] == sum(2 * (c * c + c) for c in channels)
    assert json.loads(json.dumps(report)) == report


# -- strict loading: one tensor missing, one extra, one of the wrong shape ------------------------------

def _changed(weights: dict[str, torch.Tensor], key: str, change: str) -> dict[str, torch.Tensor]:
    changed = dict(weights)
    if change == "missing":
        del changed[key]
    elif change == "extra":
        changed[key.rsplit(".", 1)[0] + ".extra.weight"] = torch.zeros(3)
    else:
        changed[key] = torch.zeros(changed[key].shape[0] + 1, *changed[key].shape[1:])
    return changed


def _load_mvdream_part(path, part):
    checkpoint = load_mvdream(path)
    builder = {"unet": build_unet, "vae": build_vae, "text_encoder": build_text_encoder}[part.split()[0]]
    return builder(checkpoint)


def _load_motion(path, part):
    return MotionModuleSet.from_checkpoint(load_motion_module(path))


def _load_alignment(path, part):
    return load_alignment(path)


# (file, tensor changed, loader, the names the error gives for a missing / extra / misshapen tensor)
STRICT_CASES = {
    "unet": (
        "mvdream",
        "model.diffusion_model.middle_block.1.proj_in.bias",
        _load_mvdream_part,
        (
            "mid_block.attentions.0.proj_in.bias",
            "mid_block.attentions.0.proj_in.extra.weight",
            "mid_block.attentions.0.proj_in.bias",
        ),
    ),
    # an extra tensor here is one the LDM -> diffusers conversion drops: named by its file key
    "unet time embedding": (
        "mvdream",
        "model.diffusion_model.time_embed.0.weight",
        _load_mvdream_part,
        ("time_embedding.linear_1.weight", "time_embed.0.extra.weight", "time_embedding.linear_1.weight"),
    ),
    "vae": (
        "mvdream",
        "first_stage_model.decoder.conv_in.weight",
        _load_mvdream_part,
        ("decoder.conv_in.weight", "decoder.conv_in.extra.weight", "decoder.conv_in.weight"),
    ),
    "text_encoder": (
        "mvdream",
        "cond_stage_model.transformer.text_model.final_layer_norm.weight",
        _load_mvdream_part,
        ("final_layer_norm.weight", "final_layer_norm.extra.weight", "final_layer_norm.weight"),
    ),
    "motion v1": ("v1", "up_blocks.3.motion_modules.2.temporal_transformer.proj_in.weight", _load_motion, None),
    "motion v2": ("v2", "mid_block.motion_modules.0.temporal_transformer.proj_out.bias", _load_motion, None),
    "motion v3": (
        "v3",
        "down_blocks.1.motion_modules.0.temporal_transformer.transformer_blocks.0.ff_norm.weight",
        _load_motion,
        None,
    ),
    "alignment": (
        "alignment",
        "up_blocks.0.motion_modules.1.temporal_transformer.align_3d_to_2d.weight",
        _load_alignment,
        None,
    ),
}


@pytest.mark.parametrize("change", ["missing", "extra", "shape"])
@pytest.mark.parametrize("kind", list(STRICT_CASES))
def test_every_checkpoint_kind_refuses_a_changed_tensor_and_names_it(weights, tmp_path, kind, change):
    source, key, load, names = STRICT_CASES[kind]
    path = weights.motion[source] if source in weights.motion else getattr(weights, source)
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata()
        changed_path = tmp_path / path.name
        save_file(_changed(load_file(str(path)), key, change), str(changed_path), metadata=metadata)
    else:
        raw = torch.load(path, weights_only=True)
        state = raw.get("state_dict", raw)
        changed_path = tmp_path / path.name
        torch.save(
            _changed(state, key, change) if state is raw else {**raw, "state_dict": _changed(state, key, change)},
            changed_path,
        )
    load(path, kind)  # the unchanged file loads
    with pytest.raises(ValueError) as error:
        load(changed_path, kind)
    message = str(error.value)
    assert changed_path.name in message
    name = names[["missing", "extra", "shape"].index(change)] if names else (
        key.rsplit(".", 1)[0] + ".extra.weight" if change == "extra" else key)
    assert name in message, message


# -- shapes the architecture reading would misread: named before anything divides by them or slices them ----

def _with(tmp_path, weights, key: str, tensor: torch.Tensor):
    raw = torch.load(weights.mvdream, weights_only=True)
    path = tmp_path / "changed.pt"
    torch.save({**raw, key: tensor}, path)
    return path, raw[key]


@pytest.mark.parametrize("width", [0, 16, 33, 64])
def test_a_wrong_width_of_the_unet_input_convolution_is_named(weights, tmp_path, width):
    key = "model.diffusion_model.input_blocks.0.0.weight"
    path, original = _with(tmp_path, weights, key, torch.zeros(width, 4, 3, 3))
    with pytest.raises(CheckpointError) as error:
        load_mvdream(path)
    assert str(error.value).startswith(
        f"changed.pt: tensor {key} has shape ({width}, 4, 3, 3); expected {tuple(original.shape)}: ")
    assert str(path) in str(error.value)


@pytest.mark.parametrize("shape", [(64, 64, 3, 3), (64, 64, 1, 2), (64, 32, 1, 1)])
def test_a_vae_attention_weight_that_is_not_1x1_is_named_not_sliced(weights, tmp_path, shape):
    key = "first_stage_model.decoder.mid.attn_1.v.weight"
    path, original = _with(tmp_path, weights, key, torch.zeros(shape))
    assert tuple(original.shape) == (64, 64, 1, 1)
    with pytest.raises(CheckpointError) as error:
        build_vae(load_mvdream(path))
    assert str(error.value).startswith(f"changed.pt: tensor {key} has shape {shape}; expected (64, 64, 1, 1) ")
    assert str(path) in str(error.value)


def test_a_vae_attention_weight_stored_as_a_linear_layer_loads_the_same(weights, tmp_path):
    key = "first_stage_model.encoder.mid.attn_1.q.weight"
    original = torch.load(weights.mvdream, weights_only=True)[key]
    path, _ = _with(tmp_path, weights, key, original[:, :, 0, 0].clone())
    linear, conv = build_vae(load_mvdream(path)), build_vae(load_mvdream(weights.mvdream))
    assert torch.equal(
        linear.encoder.mid_block.attentions[0].to_q.weight, conv.encoder.mid_block.attentions[0].to_q.weight
    )

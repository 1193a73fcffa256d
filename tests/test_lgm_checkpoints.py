"""LGM / L4GM files: the originals' full-size key lists, strict loading, one-line refusals, `vividzoo inspect`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vividzoo_core.checkpoints import inspect_checkpoint
from vividzoo_core.checkpoints.reconstruction import (
    BIG,
    L4GM,
    L4GM_INTERP,
    LGM,
    TINY,
    lgm_key_shapes,
    load_reconstruction,
)
from vividzoo_core.errors import CheckpointError
from vividzoo_core.network.lgm import LGMNetwork
from vividzoo_core.synthetic_reconstruction_weights import lgm_state_dict, write_lgm_test_weights
from vividzoo_core.synthetic_weights import (
    TINY_SD15,
    animate3d_spec,
    materialise,
    motion_state_dict,
    mvdream_state_dict,
)

META = json.loads((Path(__file__).parent / "data" / "lgm" / "meta.json").read_text())


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return write_lgm_test_weights(tmp_path_factory.mktemp("lgm"))


@pytest.mark.parametrize("temporal,recorded", [(False, "lgm_keys"), (True, "l4gm_keys")])
def test_full_size_key_lists_are_the_original_classes(temporal, recorded):
    """The original LGM / L4GM ``big`` models built on the meta device: every key and shape, ours and the network's."""
    expected = {key: tuple(shape) for key, shape in META[recorded].items()}
    shape = replace(BIG, temporal=temporal)
    assert lgm_key_shapes(shape) == expected
    with torch.device("meta"):
        network = LGMNetwork(shape)
    assert {k: tuple(t.shape) for k, t in network.state_dict().items()} == expected


@pytest.mark.parametrize("kind", [LGM, L4GM, L4GM_INTERP])
def test_files_load_strictly_and_inspect_names_them(files, kind):
    checkpoint = load_reconstruction(files[kind], kind)
    assert checkpoint.kind == kind and checkpoint.shape == replace(TINY, temporal=kind != LGM)
    assert set(checkpoint.tensors) == set(lgm_key_shapes(checkpoint.shape)) and not checkpoint.set_aside
    report = inspect_checkpoint(files[kind])
    assert report["kind"] == kind and report["family"] == "reconstruction"
    assert report["temporal_attention"] == (kind != LGM)


def test_float16_release_loads(tmp_path):
    path = tmp_path / "model_fp16_fixrot.safetensors"
    save_file(lgm_state_dict(LGM, dtype=torch.float16), str(path))
    assert load_reconstruction(path, LGM).tensors["conv.weight"].dtype == torch.float16
    assert inspect_checkpoint(path)["dtype"] == "float16"


def test_training_only_lpips_keys_are_set_aside_by_name(tmp_path):
    state = lgm_state_dict(LGM) | {"lpips_loss.net.slice1.0.weight": torch.zeros(64, 3, 3, 3),
                                   "lpips_loss.lin0.model.1.weight": torch.zeros(1, 64, 1, 1)}
    save_file(state, str(tmp_path / "with_lpips.safetensors"))
    checkpoint = load_reconstruction(tmp_path / "with_lpips.safetensors", LGM)
    assert sorted(checkpoint.set_aside) == ["lpips_loss.lin0.model.1.weight", "lpips_loss.net.slice1.0.weight"]
    assert not any(k.startswith("lpips_loss.") for k in checkpoint.tensors)


def refusal(tmp_path: Path, name: str, state: dict, kind: str) -> str:
    path = tmp_path / name
    save_file(state, str(path)) if name.endswith(".safetensors") else torch.save(state, path)
    with pytest.raises(CheckpointError) as error:
        load_reconstruction(path, kind)
    message = str(error.value)
    assert "\n" not in message and name in message
    return message


def test_missing_unused_and_misshapen_tensors_are_refused(tmp_path):
    state = lgm_state_dict(L4GM)
    missing = {k: v for k, v in state.items() if k != "unet.mid_block.t_attns.0.attn.proj.bias"}
    message = refusal(tmp_path, "recon.safetensors", missing, L4GM)
    assert "1 missing (unet.mid_block.t_attns.0.attn.proj.bias)" in message
    extra = state | {"unet.extra.weight": torch.zeros(1)}
    assert "1 unused (unet.extra.weight)" in refusal(tmp_path, "recon.safetensors", extra, L4GM)
    wrong = state | {"conv.bias": torch.zeros(15)}
    assert "conv.bias (15,) instead of (14,)" in refusal(tmp_path, "recon.safetensors", wrong, L4GM)


def test_a_unet_other_than_big_is_refused(tmp_path):
    state = {k: v for k, v in lgm_state_dict(LGM).items() if not k.startswith("unet.up_blocks.4.")}
    assert "not LGM's 'big' configuration" in refusal(tmp_path, "small.safetensors", state, LGM)


@pytest.mark.parametrize("found,name,asked,says", [
    (LGM, "model_fixrot.safetensors", L4GM, "this is LGM (model_fp16_fixrot"),
    (L4GM, "recon.safetensors", LGM, "this is L4GM's reconstruction model"),
    (L4GM, "interp.safetensors", L4GM, "this is L4GM's 4-frame interpolation model"),
    (L4GM, "recon.safetensors", L4GM_INTERP, "this is L4GM's reconstruction model"),
    (LGM, "model_fixrot.safetensors", L4GM_INTERP, "this is LGM"),
])
def test_a_file_of_another_reconstruction_kind_is_refused_naming_both(tmp_path, found, name, asked, says):
    from vividzoo_core.checkpoints.reconstruction import KIND_NAMES

    message = refusal(tmp_path, name, lgm_state_dict(found), asked)
    assert says in message and f"not {KIND_NAMES[asked]}" in message


@pytest.mark.parametrize("name,make,says", [
    ("mvdream.pt", lambda: mvdream_state_dict(TINY_SD15), "Stable Diffusion / MVDream checkpoint"),
    ("mm_sd_v15_v2.ckpt", lambda: motion_state_dict("v2", TINY_SD15.unet.block_channels), "motion module"),
    ("animate3d.safetensors", lambda: materialise(animate3d_spec(TINY_SD15.unet), torch.Generator().manual_seed(0)),
     "Animate3D's trained model"),
])
def test_a_diffusion_file_is_refused_naming_both(tmp_path, name, make, says):
    message = refusal(tmp_path, name, make(), L4GM)
    assert says in message and "not L4GM's reconstruction model" in message

"""Animate3D's files as users download them: strict loading, `vividzoo inspect` names, one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from vividzoo_core.animate3d_pipeline import check_condition_images, resize_for_latents
from vividzoo_core.checkpoints import (
    inspect_checkpoint,
    load_alignment,
    load_motion_module,
    load_mvdream,
)
from vividzoo_core.checkpoints.animate3d import load_animate3d
from vividzoo_core.checkpoints.clip_vision import load_clip_vision
from vividzoo_core.checkpoints.ip_adapter import load_ip_adapter
from vividzoo_core.diffusers_host.animate3d import build_animate3d_unet
from vividzoo_core.errors import CheckpointError, VividZooError
from vividzoo_core.synthetic_weights import (
    FULL_SD15,
    TINY_ANIMATE3D,
    TINY_CLIP_VISION,
    animate3d_spec,
    clip_vision_spec,
    ip_adapter_spec,
    ip_adapter_state_dict,
    nested_ip_adapter,
    spatial_attention_sites,
    write_animate3d_test_weights,
    write_test_weights,
)

DATA = Path(__file__).parent / "data" / "animate3d"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_animate3d_test_weights(tmp_path_factory.mktemp("animate3d_files"))


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_the_modules_only_form_leaves_726_tensors_to_the_base_files():
    """As Animate3D's inference.py asserts: its UNet minus the trained modules is 726 tensors (full size)."""
    meta = json.loads((DATA / "meta.json").read_text())
    assert meta["missing_keys_modules_only_form"] == 726
    whole = set(meta["full_form_keys"])
    assert len(whole) - len(animate3d_spec(TINY_ANIMATE3D.unet)) == 726
    # the same count at full size: MVDream UNet 686 + camera MLP 4, image projection 4, 16 x 2 IP projections
    assert len(spatial_attention_sites(FULL_SD15.unet)) == 16
    assert len(ip_adapter_spec(FULL_SD15.unet, 1024)) == 4 + 32


def test_our_writers_give_the_originals_key_layout(files):
    """The whole-UNet form we write has exactly the keys and shapes of the original model's state dict."""
    meta = json.loads((DATA / "meta.json").read_text())
    full = torch.load(files.full, weights_only=True)["state_dict"]
    assert {k: list(v.shape) for k, v in full.items()} == meta["full_form_keys"]


@pytest.mark.parametrize("form", ["modules", "full"])
def test_animate3d_files_load_strictly_and_inspect_names_them(files, form):
    path = getattr(files, form)
    checkpoint = load_animate3d(path)
    assert checkpoint.form == ("modules" if form == "modules" else "unet")
    assert len(checkpoint.channels) == 21 and checkpoint.pe_length == 32
    report = inspect_checkpoint(path)
    assert report["kind"] == "animate3d" and report["form"] == checkpoint.form
    assert ("ip_adapter" in report["needs"]) == (form == "modules")
    assert report["set_aside"] == (0 if form == "modules" else 1)  # the training step beside "state_dict"


def test_ip_adapter_both_layouts_load_alike_and_are_named(files):
    bin_file, safetensors = load_ip_adapter(files.ip_adapter_bin), load_ip_adapter(files.ip_adapter_safetensors)
    assert len(bin_file.layers) == 16 and bin_file.clip_width == TINY_CLIP_VISION.projection
    for (k1, v1), (k2, v2) in zip(bin_file.layers, safetensors.layers):
        assert torch.equal(k1, k2) and torch.equal(v1, v2)
    assert bin_file.layer_widths == [c for _, c in spatial_attention_sites(TINY_ANIMATE3D.unet)]
    for path in (files.ip_adapter_bin, files.ip_adapter_safetensors):
        report = inspect_checkpoint(path)
        assert report["kind"] == "ip_adapter" and report["layers"] == 16 and report["clip_width"] == 32


def test_clip_vision_is_read_from_its_weights_and_named(files):
    checkpoint = load_clip_vision(files.clip_vision)
    assert checkpoint.shape == TINY_CLIP_VISION
    report = inspect_checkpoint(files.clip_vision)
    assert report["kind"] == "clip_vision" and report["embedding_width"] == 32


def test_full_size_vit_h_is_named_and_has_16_heads():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from vividzoo_core.synthetic_weights import FULL_CLIP_VISION_H

    shape = FULL_CLIP_VISION_H
    assert shape.heads == 16 and "ViT-H/14" in shape.name
    config = CLIPVisionConfig(
        hidden_size=shape.width,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        projection_dim=shape.projection,
        patch_size=shape.patch,
    )
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(config)
    ours = {k: v[0] for k, v in clip_vision_spec(shape).items()}
    assert ours == {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("position_ids")}


def test_an_sdxl_ip_adapter_is_refused(tmp_path):
    sdxl = {"image_proj.proj.weight": torch.zeros(4 * 2048, 1280), "image_proj.proj.bias": torch.zeros(4 * 2048),
            "image_proj.norm.weight": torch.ones(2048), "image_proj.norm.bias": torch.zeros(2048)}
    for i in range(70):
        sdxl[f"ip_adapter.{2 * i + 1}.to_k_ip.weight"] = torch.zeros(8, 2048)
        sdxl[f"ip_adapter.{2 * i + 1}.to_v_ip.weight"] = torch.zeros(8, 2048)
    save_file(sdxl, str(tmp_path / "ip-adapter_sdxl.safetensors"))
    with pytest.raises(CheckpointError, match="SDXL IP-Adapter") as error:
        load_ip_adapter(tmp_path / "ip-adapter_sdxl.safetensors")
    assert "ip-adapter_sd15" in one_line(error)


def test_an_ip_adapter_plus_is_refused(tmp_path):
    plus = nested_ip_adapter(ip_adapter_state_dict(TINY_ANIMATE3D.unet, 32))
    plus["image_proj"] = {"latents": torch.zeros(1, 16, 64), "proj_in.weight": torch.zeros(64, 32)}
    torch.save(plus, tmp_path / "ip-adapter-plus_sd15.bin")
    with pytest.raises(CheckpointError, match="IP-Adapter Plus"):
        load_ip_adapter(tmp_path / "ip-adapter-plus_sd15.bin")


def test_a_clip_vision_model_of_the_wrong_width_is_refused(files, tmp_path):
    from vividzoo_core.checkpoints.clip_vision import ClipVisionShape
    from vividzoo_core.synthetic_weights import materialise

    bigg = ClipVisionShape(width=64, layers=2, intermediate=128, patch=14, image_size=224, projection=48)
    save_file(materialise(clip_vision_spec(bigg), torch.Generator()), str(tmp_path / "clip_vision_g.safetensors"))
    with pytest.raises(CheckpointError, match="gives 48-wide image embeddings but ip-adapter_sd15_tiny_random.bin "
                                              "reads 32-wide ones") as error:
        build_animate3d_unet(
            load_mvdream(files.mvdream),
            load_animate3d(files.modules),
            load_ip_adapter(files.ip_adapter_bin),
            load_clip_vision(tmp_path / "clip_vision_g.safetensors"),
        )
    assert "clip_vision_g.safetensors" in one_line(error) and "CLIP-ViT-H-14" in one_line(error)


def test_a_vivid_zoo_alignment_file_is_refused_as_animate3d_and_the_reverse(files, tmp_path):
    vividzoo = write_test_weights(tmp_path / "vividzoo")
    with pytest.raises(CheckpointError, match="Vivid-ZOO alignment file, not Animate3D") as error:
        load_animate3d(vividzoo.alignment)
    one_line(error)
    for path in (files.modules, files.full):
        with pytest.raises(CheckpointError, match="Animate3D's trained model") as error:
            load_alignment(path)
        one_line(error)
        with pytest.raises(CheckpointError, match="Animate3D's trained model"):
            load_motion_module(path)
        with pytest.raises(CheckpointError, match="Animate3D's trained model"):
            load_mvdream(path)


@pytest.mark.parametrize("kind, match", [("motion", "AnimateDiff motion module"), ("mvdream", "MVDream checkpoint"),
                                         ("ip_adapter_bin", "IP-Adapter")])
def test_other_files_given_as_animate3d_are_named(files, kind, match):
    with pytest.raises(CheckpointError, match=match):
        load_animate3d(getattr(files, kind))


def test_a_modules_file_missing_a_tensor_names_it(files, tmp_path):
    weights = torch.load(files.modules, weights_only=True)
    key = "mid_block.motion_modules.0.transformer_blocks.0.attn2.processor.to_q_sp.weight"
    del weights[key]
    torch.save(weights, tmp_path / "damaged.ckpt")
    with pytest.raises(CheckpointError, match="attention_blocks.1.to_q_sp.weight") as error:
        build_animate3d_unet(load_mvdream(files.mvdream), load_animate3d(tmp_path / "damaged.ckpt"),
                             load_ip_adapter(files.ip_adapter_bin))
    assert "damaged.ckpt" in one_line(error)


def test_an_unknown_tensor_is_refused(files, tmp_path):
    weights = torch.load(files.modules, weights_only=True)
    weights["down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.processor.extra.weight"] = torch.zeros(1)
    torch.save(weights, tmp_path / "extra.ckpt")
    with pytest.raises(CheckpointError, match="not part of Animate3D's UNet"):
        load_animate3d(tmp_path / "extra.ckpt")


def test_the_modules_only_form_needs_the_ip_adapter(files):
    with pytest.raises(VividZooError, match="also needs the IP-Adapter"):
        build_animate3d_unet(load_mvdream(files.mvdream), load_animate3d(files.modules))


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((3, 64, 64, 3), np.uint8), "exactly 4 views"),
        (np.zeros((5, 64, 64, 3), np.uint8), "got 5"),
        (
            [np.zeros((64, 64, 3), np.uint8)] * 3 + [np.zeros((64, 32, 3), np.uint8)],
            "same size, got 64x64, 64x64, 64x64, 32x64",
        ),
        (np.zeros((4, 64, 64, 1), np.uint8), "RGB or RGBA"),
        (torch.full((4, 8, 8, 3), 2.0), r"in \[0, 1\]"),
        ("views.png", "expected 4 images"),
    ],
)
def test_bad_condition_images_are_refused_in_one_line(images, match):
    with pytest.raises(VividZooError, match=match) as error:
        check_condition_images(images)
    one_line(error)


def test_condition_images_of_another_aspect_ratio_are_refused():
    views = check_condition_images(np.zeros((4, 64, 32, 3), np.uint8))
    with pytest.raises(VividZooError, match="aspect ratios differ"):
        resize_for_latents(views, 64, 64)


def test_rgba_views_lose_alpha_and_uint8_scales_to_one():
    views = check_condition_images(np.full((4, 8, 8, 4), 255, np.uint8))
    assert views.shape == (4, 8, 8, 3) and views.max() == 1.0

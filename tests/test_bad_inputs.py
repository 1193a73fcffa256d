"""Every kind of bad input gives a clear message naming the file or value, and what would fit."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vividzoo_core.cameras import orbit
from vividzoo_core.checkpoints import load_alignment, load_motion_module, load_mvdream, read_checkpoint
from vividzoo_core.cli import main
from vividzoo_core.compat import check_pairing
from vividzoo_core.errors import VividZooError
from vividzoo_core.pipeline import VividZooPipeline
from vividzoo_core.settings import GenerationSettings
from vividzoo_core.synthetic_weights import TINY_SD21, materialise, motion_module_spec, motion_state_dict


def _raw(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def _run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def test_plain_stable_diffusion_is_refused_as_mvdream(tmp_path, weights, capsys):
    plain = {k: v for k, v in _raw(weights.mvdream).items() if ".camera_embed." not in k}
    path = tmp_path / "v1-5-pruned-emaonly.ckpt"
    torch.save(plain, path)
    with pytest.raises(
        VividZooError, match="no camera embedding .* plain Stable Diffusion checkpoint, not a multi-view"
    ):
        load_mvdream(path)
    code, output = _run_cli(["generate", "--mvdream", str(path), "--motion", str(weights.motion["v2"]),
                             "--prompt", "x", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "v1-5-pruned-emaonly.ckpt" in output and "sd-v1.5-4view.pt" in output
    assert "Traceback" not in output


def test_files_of_another_kind_say_what_they_are(weights):
    with pytest.raises(VividZooError, match="AnimateDiff motion module; load it as the motion module"):
        load_mvdream(weights.motion["v2"])
    with pytest.raises(VividZooError, match="Stable Diffusion / MVDream checkpoint, not a motion module"):
        load_motion_module(weights.mvdream)
    with pytest.raises(VividZooError, match="alignment file, not a motion module"):
        load_motion_module(weights.alignment)
    with pytest.raises(VividZooError, match="motion module; load it as the motion module"):
        load_alignment(weights.motion["v2"])


def test_sd21_mvdream_with_sd15_motion_modules_runs_with_a_warning(tmp_path, weights):
    motion = tmp_path / "mm_for_sd21_widths.ckpt"
    torch.save(motion_state_dict("v2", TINY_SD21.unet.block_channels), motion)
    warnings = check_pairing(load_mvdream(weights.mvdream_sd21).unet_shape, load_motion_module(motion))
    assert any("not the paper's pairing" in w and "sd-v1.5-4view.pt" in w for w in warnings)
    notes = []
    pipeline = VividZooPipeline.from_files(weights.mvdream_sd21, motion, None, "cpu", log=notes.append)
    video = pipeline.generate(GenerationSettings("a chair, 3d asset", views=2, frames=2, width=16, height=16, steps=1))
    assert video.frames.shape == (2, 2, 16, 16, 3)
    assert any("not the paper's pairing" in n for n in notes)


def test_motion_module_for_other_unet_widths_is_refused(weights):
    with pytest.raises(
        VividZooError, match="does not fit the MVDream UNet: its module down_blocks.0.motion_modules.0 has 32"
    ):
        check_pairing(load_mvdream(weights.mvdream_sd21).unet_shape, load_motion_module(weights.motion["v2"]))


def test_sdxl_and_hotshot_motion_modules_are_refused(tmp_path):
    sdxl = {k: v for k, v in materialise(motion_module_spec("v2", (32, 64, 64)), torch.Generator()).items()
            if not k.startswith("mid_block")}
    save_file(sdxl, str(tmp_path / "mm_sdxl_v10_beta.safetensors"))
    with pytest.raises(VividZooError, match="AnimateDiff-SDXL motion module .*mm_sd_v15_v2.ckpt"):
        load_motion_module(tmp_path / "mm_sdxl_v10_beta.safetensors")
    hotshot = {"down_blocks.0.temporal_attentions.0.temporal_transformer.transformer_blocks.0.attention_blocks.0"
               ".pos_encoder.positional_encoding": torch.zeros(1, 8, 32)}
    save_file(hotshot, str(tmp_path / "hsxl_temporal_layers.safetensors"))
    with pytest.raises(VividZooError, match="HotshotXL .* not an SD 1.5 motion module"):
        load_motion_module(tmp_path / "hsxl_temporal_layers.safetensors")


def test_frames_past_the_position_encoding_get_windows_of_the_limit(weights):
    pipeline = VividZooPipeline.from_files(weights.mvdream, weights.motion["v1"], None, "cpu", log=lambda m: None)
    settings = GenerationSettings("x", views=1, frames=30, width=8, height=8, steps=1)
    assert pipeline.context_windows(settings) == [list(range(24)), list(range(6, 30))]  # unset: the limit, 24
    assert pipeline.generate(settings).frames.shape[0] == 30
    settings.context_frames = 28
    with pytest.raises(
        VividZooError, match="28 frames is more than the v1 motion module sees at once .at most 24.*context"
    ):
        pipeline.generate(settings)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"width": 100}, "width 100 is not a multiple of 8; try 96 or 104"),
        ({"views": 0}, "views is 0, out of range; use from 1 to 16"),
        ({"steps": 0}, "steps is 0, out of range; use from 1 to 1000"),
        ({"beta_schedule": "cosine"}, "beta_schedule 'cosine' is not one of linear, scaled_linear"),
    ],
)
def test_bad_settings(weights, change, message):
    settings = GenerationSettings(**{"prompt": "x", **change})
    with pytest.raises(VividZooError, match=message):
        settings.check()


def test_camera_count_must_match_views(weights):
    pipeline = VividZooPipeline.from_files(weights.mvdream, weights.motion["v2"], None, "cpu", log=lambda m: None)
    with pytest.raises(VividZooError, match="the cameras have 3 views but the video has 4"):
        pipeline.generate(GenerationSettings("x", views=4, frames=2, width=8, height=8, steps=1), orbit(3))


def test_truncated_and_corrupt_files(tmp_path, weights):
    data = Path(weights.mvdream).read_bytes()
    truncated = tmp_path / "sd-v1.5-4view.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(VividZooError, match="sd-v1.5-4view.pt: damaged or incomplete file"):
        load_mvdream(truncated)
    corrupt = tmp_path / "mm.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(VividZooError, match="mm.safetensors: damaged or incomplete safetensors file"):
        load_motion_module(corrupt)
    with pytest.raises(VividZooError, match="unsupported file type '.gguf'"):
        read_checkpoint(tmp_path.joinpath("model.gguf").touch() or tmp_path / "model.gguf")
    with pytest.raises(VividZooError, match="file not found"):
        read_checkpoint(tmp_path / "missing.ckpt")


class _RunsCode:
    """Unpickling this calls Path.touch: proof of execution if the marker file appears."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_with_code_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "mm_sd_v15_v2.ckpt"
    with path.open("wb") as handle:
        torch.save({"down_blocks.0.motion_modules.0.x": _RunsCode(marker)}, handle, pickle_module=pickle)
    with pytest.raises(VividZooError, match="refused: the file holds Python objects or code.*not executed"):
        load_motion_module(path)
    assert not marker.exists()


def test_alignment_for_another_motion_version_is_refused(weights):
    alignment = load_alignment(weights.alignment)
    motion = load_motion_module(weights.motion["v3"])
    with pytest.raises(
        VividZooError, match="trained with AnimateDiff v2 .* but the loaded motion module is AnimateDiff v3"
    ):
        alignment.check_fits(motion.version, motion.channels)
    with pytest.raises(VividZooError, match="AnimateDiff v2"):
        VividZooPipeline.from_files(weights.mvdream, weights.motion["v3"], weights.alignment, "cpu", log=lambda m: None)


def test_nan_in_latents_stops_with_advice(weights, monkeypatch):
    pipeline = VividZooPipeline.from_files(weights.mvdream, weights.motion["v2"], None, "cpu", log=lambda m: None)
    monkeypatch.setattr(pipeline.network, "forward", lambda sample, *args: torch.full_like(sample, float("nan")))
    with pytest.raises(VividZooError, match="NaN/infinite at step 1 of 2 .*--dtype bf16 or fp32"):
        pipeline.generate(GenerationSettings("x", views=1, frames=2, width=8, height=8, steps=2))


def test_damaged_alignment_values_are_refused(tmp_path, weights):
    loaded = read_checkpoint(weights.alignment)
    key = next(iter(loaded.tensors))
    tensors = dict(loaded.tensors)
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    save_file(tensors, str(tmp_path / "diverged.safetensors"), metadata=loaded.metadata)
    with pytest.raises(VividZooError, match="NaN or infinite values"):
        load_alignment(tmp_path / "diverged.safetensors")


def test_cli_reports_bad_files_without_traceback(tmp_path, capsys):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    code, output = _run_cli(["inspect", str(junk)], capsys)
    assert code == 1 and "junk.ckpt: not usable" in output and "Traceback" not in output

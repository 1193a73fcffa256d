"""vividzoo eval: CLIP score and proxies with a tiny random CLIP, FVD with a tiny TorchScript extractor."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from vividzoo_core.cameras import orbit
from vividzoo_core.cli import main
from vividzoo_core.data.format import frame_path
from vividzoo_core.evaluation.clip_score import ClipScorer, preprocess
from vividzoo_core.evaluation.fvd import I3D_KWARGS, I3DFeatures
from vividzoo_core.evaluation.report import bootstrap_interval
from vividzoo_core.evaluation.runs import read_run
from vividzoo_core.video import MultiViewVideo, save_video

PROMPTS = ["a red cube spinning, 3d asset", "a blue ball bouncing, 3d asset"]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> Path:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    config = CLIPConfig(text_config=dict(vocab_size=49408, max_position_embeddings=77, **small),
                        vision_config=dict(image_size=32, patch_size=8, **small), projection_dim=16)
    model = CLIPModel(config)
    with torch.no_grad():  # a shared direction in both embeddings, so cosines are positive (not clamped to 0)
        model.text_projection.weight.copy_(model.visual_projection.weight)
        model.text_model.final_layer_norm.bias.fill_(1.0)
        model.vision_model.post_layernorm.bias.fill_(1.0)
    folder = tmp_path_factory.mktemp("clip")
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def scorer(clip_folder) -> ClipScorer:
    return ClipScorer.from_folder(clip_folder)


class TinyI3D(torch.nn.Module):
    """StyleGAN-V's I3D calling convention: uint8 (N, 3, T, H, W), rescale/resize/return_features keywords."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.dim() != 5 or x.shape[1] != 3:
            raise ValueError("expected a uint8 (N, 3, T, H, W) batch")
        if not (rescale and resize and return_features):
            raise ValueError("call with rescale=True, resize=True, return_features=True")
        video = x.float() / 127.5 - 1.0
        video = torch.nn.functional.interpolate(video, size=(x.shape[2], 16, 16), mode="trilinear", align_corners=False)
        motion = (video[:, :, 1:] - video[:, :, :-1]).abs().mean(dim=(2, 3, 4))
        top_minus_bottom = (video[:, :, :, :8] - video[:, :, :, 8:]).mean(dim=(2, 3, 4))  # sees the H/W layout
        half = x.shape[2] // 2
        early_minus_late = video[:, :, :half].mean(dim=(2, 3, 4)) - video[:, :, half:].mean(dim=(2, 3, 4))
        return torch.cat([video.mean(dim=(2, 3, 4)), video.std(dim=(2, 3, 4)), motion, top_minus_bottom,
                          early_minus_late], dim=1)


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("i3d") / "i3d_torchscript.pt"
    torch.jit.script(TinyI3D()).save(str(path))
    return path


def random_video(seed: int, frames: int = 4, views: int = 4, size: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(1, views, size, size, 3, generator=generator)
    drift = torch.rand(frames, 1, 1, 1, 3, generator=generator) * 0.3
    return (base * 0.7 + drift).clamp(0, 1)


def write_run(folder: Path, seed: int, prompts: list[str] = PROMPTS, frames: int = 4) -> Path:
    for index, prompt in enumerate(prompts):
        video = random_video(seed + index, frames)
        save_video(MultiViewVideo(video, orbit(video.shape[1]), info={"prompt": prompt}), folder / f"{index:03d}")
    return folder


def write_reference(folder: Path, videos: list[torch.Tensor]) -> Path:
    """The dataset format (vividzoo_core/data/format.py) with exactly these frames."""
    for index, video in enumerate(videos):
        obj = folder / f"obj_{index}"
        for f in range(video.shape[0]):
            for v in range(video.shape[1]):
                path = frame_path(obj, v, f)
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray((video[f, v] * 255).round().byte().numpy()).save(path)
        (obj / "caption.txt").write_text("a thing")
        orbit(video.shape[1]).save(obj / "cameras.json")
    return folder


# -- CLIP score and proxies ----------------------------------------------------------------------------

def test_clip_score_matches_clip_model_logits(scorer):
    """100 x cosine from the model's own forward (logits / logit scale), clamped at 0, averaged."""
    video = random_video(1)
    prompt = PROMPTS[0]
    images = video.reshape(-1, 32, 32, 3)
    ids = scorer.tokenizer([prompt], padding="max_length", max_length=77, return_tensors="pt").input_ids
    output = scorer.model(input_ids=ids, pixel_values=preprocess(images, 32))
    cosine = output.logits_per_image[:, 0] / scorer.model.logit_scale.exp()
    expected = (100 * cosine).clamp(min=0).mean().item()
    assert 0 < cosine.min() < cosine.max() < 1
    assert scorer.score_video(video, prompt).clip_score == pytest.approx(expected, rel=1e-5)


def test_identical_inputs_give_identical_scores_and_order_does_not_matter(scorer):
    video = random_video(2)
    first = scorer.score_video(video, PROMPTS[1])
    assert scorer.score_video(video.clone(), PROMPTS[1]) == first
    shuffled_views = scorer.score_video(video[:, [2, 0, 3, 1]], PROMPTS[1])
    reversed_frames = scorer.score_video(video.flip(0), PROMPTS[1])
    permuted_frames = scorer.score_video(video[[1, 3, 0, 2]], PROMPTS[1])
    assert shuffled_views.clip_score == pytest.approx(first.clip_score, rel=1e-5)
    assert shuffled_views.temporal_consistency == pytest.approx(first.temporal_consistency, rel=1e-5)
    assert shuffled_views.cross_view_consistency == pytest.approx(first.cross_view_consistency, rel=1e-5)
    assert permuted_frames.clip_score == pytest.approx(first.clip_score, rel=1e-5)
    assert permuted_frames.cross_view_consistency == pytest.approx(first.cross_view_consistency, rel=1e-5)
    assert reversed_frames.temporal_consistency == pytest.approx(first.temporal_consistency, rel=1e-5)


def test_proxies_are_one_for_still_and_identical_views_and_lower_otherwise(scorer):
    still = random_video(3)[:1].expand(4, -1, -1, -1, -1)
    same_views = random_video(3)[:, :1].expand(-1, 4, -1, -1, -1)
    assert scorer.score_video(still, "x").temporal_consistency == pytest.approx(1.0, abs=1e-5)
    assert scorer.score_video(same_views, "x").cross_view_consistency == pytest.approx(1.0, abs=1e-5)
    changing = torch.rand(4, 4, 32, 32, 3, generator=torch.Generator().manual_seed(4))
    scores = scorer.score_video(changing, "x")
    assert scores.temporal_consistency < 0.999 and scores.cross_view_consistency < 0.999
    embeddings = scorer.image_embeddings(changing.reshape(-1, 32, 32, 3)).view(4, 4, -1)
    cross = np.mean([float(embeddings[f, a] @ embeddings[f, b]) for f in range(4) for a in range(4) for b in range(4) if a != b])
    temporal = np.mean([float(embeddings[f, v] @ embeddings[f + 1, v]) for f in range(3) for v in range(4)])
    assert scores.cross_view_consistency == pytest.approx(cross, rel=1e-5)
    assert scores.temporal_consistency == pytest.approx(temporal, rel=1e-5)


def test_preprocessing_matches_clip_image_processor():
    from transformers import CLIPImageProcessor

    coarse = torch.rand(2, 3, 6, 8, generator=torch.Generator().manual_seed(5))  # smooth, like real images
    images = torch.nn.functional.interpolate(coarse, size=(48, 64), mode="bilinear").permute(0, 2, 3, 1)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    uint8 = [(image * 255).round().byte().numpy() for image in images]
    expected = processor(images=uint8, return_tensors="pt").pixel_values
    ours = preprocess(torch.from_numpy(np.stack(uint8)).float() / 255, 32)
    assert ours.shape == expected.shape
    # PIL (uint8) and torch bicubic differ by round-off only; a crop one pixel off is ~0.18 away
    assert (ours - expected).abs().mean() < 0.01 and (ours - expected).abs().max() < 0.05


def test_bootstrap_interval_brackets_the_mean_with_the_normal_width():
    values = np.random.default_rng(0).normal(5.0, 2.0, size=400)
    low, high = bootstrap_interval(list(values))
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * values.std() / math.sqrt(values.size), rel=0.08)
    assert bootstrap_interval([3.0, 3.0, 3.0]) == (3.0, 3.0)


# -- the command ---------------------------------------------------------------------------------------

def test_eval_of_two_runs_writes_table_csv_json_png_and_fvd(tmp_path, clip_folder, i3d_file, capsys):
    first, second = write_run(tmp_path / "a", seed=10, frames=9), write_run(tmp_path / "b", seed=20, frames=9)
    reference = write_reference(tmp_path / "ref", [r.load() for r in read_run("a", first).results])
    out = tmp_path / "eval"
    code = main(["eval", "--run", f"training-free={first}", "--run", f"trained={second}", "--clip", str(clip_folder),
                 "--i3d", str(i3d_file), "--reference", str(reference), "--reference-stride", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "CLIP score" in printed and "FVD" in printed and "(proxy)" in printed
    assert "8/8" in printed and "warning: FVD" in printed  # 2 prompts x 4 views per side; 8 < 15 dimensions
    report = json.loads((out / "eval.json").read_text())
    runs = {run["run"]: run for run in report["runs"]}
    assert runs["training-free"]["fvd"] == pytest.approx(0.0, abs=1e-6)  # reference = run a's own frames
    assert runs["trained"]["fvd"] > 1e-3
    assert runs["trained"]["per_prompt"]["prompt"] == PROMPTS
    scorer = ClipScorer.from_folder(clip_folder)
    expected = np.mean([scorer.score_video(r.load(), r.prompt).clip_score for r in read_run("b", second).results])
    assert runs["trained"]["clip_score"] == pytest.approx(expected, rel=1e-5)
    assert (out / "eval.csv").read_text().splitlines()[0].startswith("run,prompts,fvd")
    assert Image.open(out / "eval.png").size[0] > 100
    assert "training-free" in (out / "eval.txt").read_text()


def test_eval_with_prompts_generates_both_runs_first(tmp_path, weights, clip_folder):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS))
    out = tmp_path / "eval"
    code = main(["eval", "--prompts", str(prompts), "--mvdream", str(weights.mvdream), "--motion",
                 str(weights.motion["v2"]), "--alignment", "training-free=none", "--alignment",
                 f"trained={weights.alignment}", "--views", "4", "--frames", "2", "--size", "32", "--steps", "1",
                 "--device", "cpu", "--clip", str(clip_folder), "--out", str(out)])
    assert code == 0
    report = json.loads((out / "eval.json").read_text())
    assert [run["run"] for run in report["runs"]] == ["training-free", "trained"]
    assert all(run["prompts"] == 2 and run["fvd"] is None for run in report["runs"])
    first, second = (out / "runs" / name / "000_a_red_cube_spinning_3d_asset" for name in ("training-free", "trained"))
    assert json.loads((second / "info.json").read_text())["alignment"] == weights.alignment.name
    assert read_run("x", first).results[0].load().shape == (2, 4, 32, 32, 3)
    assert not torch.equal(read_run("x", first).results[0].load(), read_run("x", second).results[0].load())


def test_prompt_comes_from_grid_mp4_metadata_without_info_json(tmp_path):
    folder = write_run(tmp_path / "a", seed=1)
    for info in folder.glob("*/info.json"):
        info.unlink()
    assert read_run("a", folder).prompts == PROMPTS


def parse_error(capsys, argv: list[str]) -> str:
    """An option rejected while parsing: argparse's usage line and one error line, exit status 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("vividzoo eval: error:")]
    assert len(lines) == 1
    return lines[0]


def test_bad_inputs_are_one_line_errors_before_heavy_work(tmp_path, clip_folder, i3d_file, capsys):
    run = write_run(tmp_path / "a", seed=1)
    long_run = write_run(tmp_path / "long", seed=1, prompts=PROMPTS[:1], frames=9)
    other = write_run(tmp_path / "b", seed=2, prompts=["a green cone, 3d asset", PROMPTS[1]])
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"

    def error(*options: str) -> str:
        code = main(["eval", *options, "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
        return err

    clip = ("--clip", str(clip_folder))
    assert "missing.pt does not exist" in parse_error(capsys, ["eval", "--run", f"a={run}", "--i3d",
                                                               str(tmp_path / "missing.pt"), "--out", str(out)])
    assert "NAME=FOLDER" in parse_error(capsys, ["eval", "--run", str(run), *clip, "--out", str(out)])
    assert "holds no generated results" in error("--run", f"a={empty}", *clip)
    assert "different prompts" in error("--run", f"a={run}", "--run", f"b={other}", *clip)
    assert "nothing to measure" in error("--run", f"a={run}")
    assert "needs both --i3d" in error("--run", f"a={run}", "--i3d", str(i3d_file))

    assert "has no config.json" in error("--run", f"a={run}", "--clip", str(empty))
    not_clip = tmp_path / "bert"
    not_clip.mkdir()
    (not_clip / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert "not CLIP" in error("--run", f"a={run}", "--clip", str(not_clip))
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((clip_folder / "config.json").read_text())
    assert "has no model.safetensors or pytorch_model.bin" in error("--run", f"a={run}", "--clip", str(no_weights))
    save_file({"text_projection.weight": torch.zeros(3, 3)}, no_weights / "model.safetensors")
    assert "does not fit" in error("--run", f"a={run}", "--clip", str(no_weights))
    save_file({"something.else": torch.zeros(3)}, no_weights / "model.safetensors")
    assert "is not this CLIP model's weights" in error("--run", f"a={run}", "--clip", str(no_weights))

    reference = ("--reference", str(tmp_path))
    pickled = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, pickled)
    assert "is not a TorchScript file" in error("--run", f"a={long_run}", "--i3d", str(pickled), *reference)
    wrong = tmp_path / "wrong.pt"
    torch.jit.script(torch.nn.Linear(3, 3)).save(str(wrong))
    assert "does not work as the I3D" in error("--run", f"a={long_run}", "--i3d", str(wrong), *reference)
    assert "at least 9 frames (the standard is 16); the videos have 4" in error(
        "--run", f"a={run}", "--i3d", str(i3d_file), *reference)
    assert "no object has 25 frames for 9-frame reference clips at stride 3" in error(
        "--run", f"a={long_run}", "--i3d", str(i3d_file), *reference)

    prompts, bogus = tmp_path / "prompts.txt", tmp_path / "bogus.safetensors"
    prompts.write_text(PROMPTS[0])
    save_file({"weight": torch.zeros(2)}, bogus)
    assert "needs --mvdream FILE" in error("--prompts", str(prompts), *clip)
    assert "not a Vivid-ZOO alignment file" in error(
        "--prompts", str(prompts), "--mvdream", str(bogus), "--motion", str(bogus), "--alignment", "free=none",
        "--alignment", f"trained={bogus}", *clip)
    (run / "001" / "frames" / "f002_v01.png").unlink()
    assert "frames is incomplete" in error("--run", f"a={run}", *clip)
    assert not out.exists()


def test_i3d_is_called_with_stylegan_v_convention(i3d_file):
    detector = I3DFeatures.from_file(i3d_file)
    assert I3D_KWARGS == {"rescale": True, "resize": True, "return_features": True}
    clips = torch.rand(4, 4, 24, 40, 3, generator=torch.Generator().manual_seed(6))  # 4 clips of 4 frames
    features = detector.features(clips)
    assert features.shape == (4, detector.dimension) and features.dtype == np.float64
    uint8 = (clips * 255).round().byte().permute(0, 4, 1, 2, 3)
    expected = TinyI3D()(uint8, rescale=True, resize=True, return_features=True).double().numpy()
    assert np.allclose(features, expected)


def test_training_validation_logs_clip_quality_beside_the_loss(weights, clip_folder, tmp_path):
    from vividzoo_core.data.toy import make_toy_dataset
    from vividzoo_core.evaluation.runs import read_result
    from vividzoo_core.training.config import config_from_dict
    from vividzoo_core.training.trainer import Trainer, TrainingLog

    make_toy_dataset(tmp_path / "toy", objects=2, views=4, frames=4, size=32, seed=0)
    config = config_from_dict({
        "mvdream": str(weights.mvdream), "motion_module": str(weights.motion["v2"]), "data": str(tmp_path / "toy"),
        "output_dir": str(tmp_path / "run"), "steps": 1, "batch_size": 1, "frames": 4, "frame_stride": 1,
        "image_size": 32, "mixed_precision": "no", "num_workers": 0, "log_every": 1, "validate_every": 1,
        "validation_prompts": [PROMPTS[0]], "validation_steps": 1, "validation_frames": 4,
        "validation_clip": str(clip_folder)})
    Trainer(config, log=lambda message: None).train(resume=None)
    rows = (tmp_path / "run" / "quality.csv").read_text().splitlines()
    assert rows[0] == "step,clip_score,temporal_consistency,cross_view_consistency" and len(rows) == 2
    logged = dict(zip(rows[0].split(","), map(float, rows[1].split(","))))
    saved = read_result(tmp_path / "run" / "validation" / "step-0000001" / "prompt_0")
    rescored = ClipScorer.from_folder(clip_folder).score_video(saved.load(), saved.prompt)
    assert logged["clip_score"] == pytest.approx(rescored.clip_score, rel=1e-2)  # saved PNGs are 8-bit
    assert logged["cross_view_consistency"] == pytest.approx(rescored.cross_view_consistency, rel=1e-2)
    assert Image.open(tmp_path / "run" / "loss.png").size[0] >= 1400  # loss, CLIP score and proxies side by side
    assert list((tmp_path / "run" / "tensorboard").iterdir())
    plain = tmp_path / "plain"
    plain.mkdir()
    TrainingLog(plain, 0).close()
    assert not (plain / "quality.csv").exists()  # no CLIP folder, no quality log


def test_default_validation_prompts_are_the_first_eval_prompts():
    from vividzoo_core.prompts import EVAL_PROMPTS, read_prompts
    from vividzoo_core.training.config import TrainingConfig

    prompts = read_prompts(EVAL_PROMPTS)
    assert len(prompts) >= 50 and all(p.endswith(", 3d asset") for p in prompts) and len(set(prompts)) == len(prompts)
    assert TrainingConfig().validation_prompts == prompts[:4]

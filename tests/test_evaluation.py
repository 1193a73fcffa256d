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
from vividzoo_core.evaluation.fvd import I3D_KWARGS, I3DFeatures, reference_clips, reference_frame
from vividzoo_core.evaluation.report import PER_PROMPT_METRICS, RunScores, bootstrap_interval, summary_figure
from vividzoo_core.evaluation.runs import read_run
from vividzoo_core.video import MultiViewVideo, save_video

PROMPTS = ["a red cube spinning, 3d asset", "a blue ball bouncing, 3d asset"]
STYLEGAN_V = Path(__file__).parent / "data" / "stylegan_v.npz"
"""Recorded from StyleGAN-V's own code by tests/data/record_stylegan_v.py."""


def tiny_clip(seed: int):
    """A random transformers CLIPModel with 32 x 32 input images and 16-dimensional embeddings."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    return CLIPModel(CLIPConfig(text_config={"vocab_size": 49408, "max_position_embeddings": 77, **small},
                                vision_config={"image_size": 32, "patch_size": 8, **small}, projection_dim=16))


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> Path:
    model = tiny_clip(seed=0)
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
    """100 x cosine from the model's own forward (logits / logit scale), averaged, then clamped at 0."""
    video = random_video(1)
    prompt = PROMPTS[0]
    images = video.reshape(-1, 32, 32, 3)
    ids = scorer.tokenizer([prompt], padding="max_length", max_length=77, return_tensors="pt").input_ids
    output = scorer.model(input_ids=ids, pixel_values=preprocess(images, 32))
    cosine = output.logits_per_image[:, 0] / scorer.model.logit_scale.exp()
    expected = (100 * cosine).mean().clamp(min=0).item()
    assert 0 < cosine.min() < cosine.max() < 1
    assert scorer.score_video(video, prompt).clip_score == pytest.approx(expected, rel=1e-5)


def save_clip_with_processor(model, folder: Path) -> Path:
    """A CLIPModel folder that transformers' from_pretrained (and so torchmetrics) loads, with our tokenizer."""
    from transformers import CLIPImageProcessor, CLIPProcessor

    from vividzoo_core.diffusers_host import clip_tokenizer

    size = model.config.vision_config.image_size
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": size},
                                                     crop_size={"height": size, "width": size}),
                  tokenizer=clip_tokenizer("clip")).save_pretrained(folder)
    return folder


def torchmetrics_clip_score(folder: Path, images: torch.Tensor, prompt: str) -> float:
    """torchmetrics' own ``clip_score`` of ``(N, H, W, 3)`` images in [0, 1] (given as uint8) with one prompt."""
    from torchmetrics.functional.multimodal import clip_score
    from transformers import CLIPModel, CLIPProcessor

    class TensorFeaturesCLIP(CLIPModel):
        """transformers 5 returns output objects from get_*_features; torchmetrics 1.9 expects the projected
        embeddings (their pooler_output), as torchmetrics' fix for it (Lightning-AI/torchmetrics#3408) unwraps."""

        def get_image_features(self, *args, **kwargs):
            return super().get_image_features(*args, **kwargs).pooler_output

        def get_text_features(self, *args, **kwargs):
            return super().get_text_features(*args, **kwargs).pooler_output

    def load() -> tuple:
        return TensorFeaturesCLIP.from_pretrained(folder), CLIPProcessor.from_pretrained(folder)

    uint8 = list((images * 255).round().byte().permute(0, 3, 1, 2))
    return clip_score(uint8, [prompt] * len(uint8), model_name_or_path=load).item()


def test_clip_score_is_torchmetrics_clip_score_of_the_prompt_frames(tmp_path):
    """Frames whose cosines with the prompt have both signs: torchmetrics averages, then clamps at 0."""
    pytest.importorskip("torchmetrics")
    model = tiny_clip(seed=4)  # its cosines of solid-colour frames with PROMPTS[1] straddle 0
    positive = save_clip_with_processor(model, tmp_path / "clip")
    with torch.no_grad():
        model.text_projection.weight.neg_()  # every cosine changes sign: the mean becomes negative
    negative = save_clip_with_processor(model, tmp_path / "negated")
    # frames already at the model's input size, so both sides' resizing is the identity (it is tested above)
    colours = torch.rand(4, 4, 1, 1, 3, generator=torch.Generator().manual_seed(7))
    video = (colours.expand(4, 4, 32, 32, 3) * 255).round() / 255
    scorer = ClipScorer.from_folder(positive)
    cosines = 100 * scorer.image_embeddings(video.reshape(-1, 32, 32, 3)) @ scorer.text_embedding(PROMPTS[1])
    assert cosines.min() < -5 and cosines.max() > 5 and cosines.mean() > 5  # mixed signs, positive mean
    assert cosines.clamp(min=0).mean() - cosines.mean() > 1  # clamping each frame would differ by > 1 point
    for folder, expected in ((positive, cosines.mean().item()), (negative, 0.0)):
        ours = ClipScorer.from_folder(folder).score_video(video, PROMPTS[1]).clip_score
        reference = torchmetrics_clip_score(folder, video.reshape(-1, 32, 32, 3), PROMPTS[1])
        assert reference == pytest.approx(expected, abs=1e-3)
        assert ours == pytest.approx(reference, abs=1e-3)


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
    cross = np.mean(
        [float(embeddings[f, a] @ embeddings[f, b]) for f in range(4) for a in range(4) for b in range(4) if a != b]
    )
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


def test_each_metric_interval_comes_from_its_own_values(tmp_path):
    from vividzoo_core.evaluation.report import write_reports

    rng = np.random.default_rng(8)
    per_prompt = {"clip_score": list(rng.normal(31.0, 2.0, 12)),
                  "temporal_consistency": list(rng.normal(0.95, 0.01, 12)),
                  "cross_view_consistency": list(rng.normal(0.7, 0.05, 12))}
    run = RunScores("trained", [f"p{i}" for i in range(12)], per_prompt, fvd=12.5, generated_clips=48,
                    reference_clips=48)
    summary = run.summary()
    for metric, values in per_prompt.items():
        interval = bootstrap_interval(values)
        assert interval[0] < np.mean(values) < interval[1]
        assert summary[f"{metric}_ci95"] == list(interval)
    write_reports([run], tmp_path, notes=[])
    csv_row = (tmp_path / "eval.csv").read_text().splitlines()[1].split(",")
    csv_columns = (tmp_path / "eval.csv").read_text().splitlines()[0].split(",")
    written = json.loads((tmp_path / "eval.json").read_text())["runs"][0]
    for metric, values in per_prompt.items():
        interval = bootstrap_interval(values)
        assert written[f"{metric}_ci95"] == list(interval)
        for end, value in zip(("low", "high"), interval):
            assert float(csv_row[csv_columns.index(f"{metric}_ci95_{end}")]) == pytest.approx(value, rel=1e-12)
    figure = summary_figure([summary])
    for axis, metric in zip(figure.axes[1:], PER_PROMPT_METRICS):  # the first panel is FVD
        whisker = axis.collections[0].get_segments()[0]  # the error bar drawn for the run
        assert [whisker[0][1], whisker[1][1]] == pytest.approx(list(bootstrap_interval(per_prompt[metric])))


def test_consistency_axes_are_fitted_to_the_data():
    """Two runs at 0.9989 and 0.9988: their dots lie far apart in eval.png, not on one line near the top."""
    def summary(name: str, value: float) -> dict:
        row = {"run": name, "fvd": None, "generated_clips": 0, "reference_clips": 0}
        for metric in PER_PROMPT_METRICS:
            row[metric], row[f"{metric}_ci95"] = value, [value - 2e-5, value + 2e-5]
        return row

    figure = summary_figure([summary("a", 0.9989), summary("b", 0.9988)])
    for axis in figure.axes:
        low, high = axis.get_ylim()
        assert 0.9988 - 2e-5 > low > 0.998 and 0.9989 + 2e-5 < high < 0.9995
        heights = [axis.transData.transform((index, value))[1] for index, value in enumerate((0.9989, 0.9988))]
        assert heights[0] - heights[1] > 50  # pixels at eval.png's 100 dpi
    figure = summary_figure([summary("a", 31.2), summary("b", 31.2)])  # equal values still get a span
    low, high = figure.axes[0].get_ylim()
    assert low < 31.2 - 2e-5 and 31.2 + 2e-5 < high < 31.3


# -- reference clips (FVD) -------------------------------------------------------------------------------

def test_reference_frames_are_stylegan_v_dataset_frames():
    """Shorter side to the size with LANCZOS, longer side truncated, centre crop rounded half up, as StyleGAN-V's
    convert_videos_to_frames.py with torchvision 0.8.2 (odd crops, .5 sizes, upscaling, square, no resize)."""
    recorded = np.load(STYLEGAN_V)
    assert str(recorded["torchvision_version"]) == "0.8.2"
    cases = sorted(int(key.rsplit("_", 1)[1]) for key in recorded.files if key.startswith("frame_input_"))
    assert len(cases) == 6
    for case in cases:
        source, size = recorded[f"frame_input_{case}"], int(recorded[f"frame_size_{case}"])
        ours = (reference_frame(Image.fromarray(source), size) * 255).round().byte().numpy()
        expected = recorded[f"frame_output_{case}"]
        assert ours.shape == expected.shape == (size, size, 3)
        # the same Pillow LANCZOS gives identical pixels; a crop one pixel off or another scale changes thousands
        assert np.abs(ours.astype(int) - expected).max() <= 1, f"frame {source.shape[1]}x{source.shape[0]} to {size}"


def test_reference_clips_take_frames_at_the_stride(tmp_path):
    frames = [torch.full((1, 2, 40, 24, 3), index / 20) for index in range(12)]  # frame f has value f/20
    write_reference(tmp_path / "ref", [torch.cat(frames)])
    objects, clips = reference_clips(tmp_path / "ref", frames=4, stride=3, size=16, log=lambda message: None)
    clip = next(clips)
    assert objects == 1 and clip.shape == (2, 4, 16, 16, 3)
    levels = (clip[:, :, 8, 8, 0] * 20).round()
    assert levels.tolist() == [[0, 3, 6, 9], [0, 3, 6, 9]]


# -- the command ---------------------------------------------------------------------------------------

def test_eval_of_two_runs_writes_table_csv_json_png_and_fvd(tmp_path, clip_folder, i3d_file, capsys):
    first, second = write_run(tmp_path / "a", seed=10, frames=9), write_run(tmp_path / "b", seed=20, frames=9)
    # reference frames 0, 2, ..., 16 are run a's frames; the odd ones in between are their negatives
    interleaved = [torch.stack([video, 1 - video], dim=1).flatten(0, 1) for video in
                   (r.load() for r in read_run("a", first).results)]
    reference = write_reference(tmp_path / "ref", interleaved)
    out = tmp_path / "eval"
    code = main(["eval", "--run", f"training-free={first}", "--run", f"trained={second}", "--clip", str(clip_folder),
                 "--i3d", str(i3d_file), "--reference", str(reference), "--reference-stride", "2", "--out", str(out)])
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


def test_eval_compares_animate3d_with_vividzoo_on_the_same_prompts_and_seed(tmp_path, animate3d_weights, clip_folder):
    files = animate3d_weights
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(PROMPTS[0])
    out = tmp_path / "eval"
    assert main(["eval", "--prompts", str(prompts), "--mvdream", str(files.mvdream), "--motion", str(files.motion),
                 "--alignment", "training-free=none", "--animate3d", f"animate3d={files.full}", "--clip-vision",
                 str(files.clip_vision), "--frames", "2", "--size", "64", "--steps", "1", "--free-init-iterations", "1",
                 "--device", "cpu", "--clip", str(clip_folder), "--out", str(out)]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert [run["run"] for run in report["runs"]] == ["training-free", "animate3d"]
    infos = [json.loads((out / "runs" / name / "info.json").read_text()) for name in ("training-free", "animate3d")]
    assert infos[0]["seed"] == infos[1]["seed"] and infos[1]["model"] == "Animate3D"
    assert infos[1]["condition_views"]["made_by"].startswith("MVDream")
    assert read_run("x", out / "runs" / "animate3d").results[0].load().shape == (2, 4, 64, 64, 3)


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
    assert "give one --alignment NAME=FILE|none (Vivid-ZOO) or --animate3d NAME=FILE" in error(
        "--prompts", str(prompts), *clip)
    assert "the runs to generate need --mvdream, --motion FILE" in error(
        "--prompts", str(prompts), "--alignment", "free=none", *clip)
    assert "need --clip-vision FILE" in error(
        "--prompts", str(prompts), "--mvdream", str(bogus), "--animate3d", f"a3d={bogus}", *clip)
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

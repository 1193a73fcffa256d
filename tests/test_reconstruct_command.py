"""``vividzoo reconstruct`` and ``--reconstruct``: a run folder in, PLYs + manifest + scored info.json out; every bad
input is one line before any weights load (issue 18 D and E)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vividzoo_core.cameras import moving_orbit, orbit
from vividzoo_core.checkpoints.reconstruction import L4GM, L4GM_INTERP, LGM
from vividzoo_core.cli import main
from vividzoo_core.gaussian_sequence import MANIFEST_FILE, TURNTABLE_MP4, ply_name
from vividzoo_core.gaussians import ply_bytes
from vividzoo_core.reconstruction_inputs import RECONSTRUCTION_FOLDER, read_result
from vividzoo_core.reconstruction_pipeline import ReconstructionPipeline
from vividzoo_core.synthetic_reconstruction_weights import write_lgm_test_weights
from vividzoo_core.video import INFO_FILE, MultiViewVideo, rescue_frames, save_video

SIZE = 64
"""Frames and model input for the tiny weights (the released models take 256)."""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return write_lgm_test_weights(tmp_path_factory.mktemp("lgm"))


def write_result(folder: Path, frames: int = 2, views: int = 4, size: int = SIZE, cameras=None, **options) -> Path:
    """A result folder as `vividzoo generate` writes it: frame f of view v a flat grey of its own."""
    values = torch.arange(frames * views, dtype=torch.float32).reshape(frames, views, 1, 1, 1) / (frames * views)
    video = values.expand(frames, views, size, size, 3).clone()
    rig = orbit(views, 0.0) if cameras is None else cameras
    save_video(MultiViewVideo(video, rig, 8.0, {"prompt": "a test"}), folder, **{"view_videos": False, **options})
    return folder


def cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


@pytest.fixture
def no_loading(monkeypatch):
    """Fails the test if any reconstruction weights are read."""
    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was checked")

    monkeypatch.setattr("vividzoo_core.reconstruction_pipeline.load_reconstruction", refuse)


def test_reconstruct_writes_plys_manifest_turntable_and_scored_info(files, tmp_path, capsys):
    run = write_result(tmp_path / "run")
    code, output = cli(["reconstruct", str(run), "--lgm", str(files[LGM]), "--input-size", str(SIZE),
                        "--device", "cpu"], capsys)
    assert code == 0, output
    out = run / RECONSTRUCTION_FOLDER
    # The same frames through the library give the same Gaussians, byte for byte in the PLYs.
    pipeline = ReconstructionPipeline.from_files(LGM, files[LGM], device="cpu", input_size=SIZE)
    expected = pipeline.reconstruct(read_result(run), score=False)
    for frame in range(2):
        assert (out / ply_name(frame)).read_bytes() == ply_bytes(expected.gaussians[frame])
    assert (out / TURNTABLE_MP4).is_file()
    info = json.loads((out / INFO_FILE).read_text())
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["info"] == info and manifest["fps"] == 8.0 and manifest["frames"] == 2
    assert info["video"]["prompt"] == "a test" and info["files"] == {LGM: files[LGM].name}
    assert info["output_to_input_frame"] == [0, 1]
    assert len(info["score"]["psnr_db"]) == 2 and len(info["score"]["ssim"]) == 2
    assert f"wrote {out}/" in output


def test_view_videos_with_a_cameras_file(files, tmp_path, capsys):
    """4 view videos + a cameras file, through L4GM."""
    run = write_result(tmp_path / "run", view_videos=True)
    videos = [str(run / f"view_{v:02d}.mp4") for v in range(4)]
    code, output = cli(["reconstruct", "--videos", *videos, "--cameras", str(run / "cameras.json"), "--l4gm",
                        str(files[L4GM]), "--input-size", str(SIZE), "--no-preview", "--no-score",
                        "--out", str(tmp_path / "out"), "--device", "cpu"], capsys)
    assert code == 0, output
    info = json.loads((tmp_path / "out" / INFO_FILE).read_text())
    assert info["input_frames"] == 2 and info["output_to_input_frame"] == [0, 1] and "score" not in info
    assert "views 1-3 of frame 0" in info["views_fed"]
    assert not (tmp_path / "out" / TURNTABLE_MP4).exists()


def test_a_run_of_several_prompts_is_reconstructed_per_result(files, tmp_path, capsys):
    write_result(tmp_path / "run" / "000_a", frames=1)
    write_result(tmp_path / "run" / "001_b", frames=1)
    code, output = cli(["reconstruct", str(tmp_path / "run"), "--lgm", str(files[LGM]), "--input-size",
                        str(SIZE), "--no-preview", "--no-score", "--out", str(tmp_path / "out"), "--device",
                        "cpu"], capsys)
    assert code == 0, output
    for name in ("000_a", "001_b"):
        info = json.loads((tmp_path / "out" / name / INFO_FILE).read_text())
        assert info["output_to_input_frame"] == [0] and info["source"] == str(tmp_path / "run" / name)


def bad_nan(folder: Path) -> Path:
    frames = torch.rand(2, 4, SIZE, SIZE, 3)
    frames[1, 2, 5, 5, 0] = float("nan")
    folder.mkdir()
    # A rescued float video (what save_video_or_rescue keeps when no writer works), with a NaN in frame 1 view 2.
    np.savez(folder / "frames.npz", frames=frames.numpy(), fps=np.array(8.0), cameras=orbit(4, 0.0).matrices)
    return folder


@pytest.mark.parametrize("make, extra, message", [
    (lambda p: write_result(p, views=3, cameras=orbit(3, 0.0)), [], "3 views, but LGM and L4GM take exactly 4"),
    (lambda p: write_result(p, size=48), [], "take square frames of 64 px"),
    (lambda p: write_result(p, frames=1), ["--l4gm", "L4GM", "--interp", "INTERP"], "needs at least 2"),
    (lambda p: write_result(p, cameras=None).joinpath("cameras.json").unlink() or p, [],
     "has no cameras.json"),
    (bad_nan, [], "frame 1 view 2 has NaN"),
    (lambda p: write_result(p, cameras=orbit(4, 0.0, azimuth_span=180.0)), [], "90 degrees apart"),
    (lambda p: write_result(p, frames=3, cameras=moving_orbit(4, 3, 0.0, turn=90.0)),
     ["--l4gm", "L4GM", "--interp", "INTERP"], "the cameras move between frames"),
])
def test_bad_inputs_are_one_line_before_any_weights_load(files, tmp_path, capsys, no_loading, make, extra, message):
    run = make(tmp_path / "run")
    names = {"L4GM": str(files[L4GM]), "INTERP": str(files[L4GM_INTERP])}
    model = [names.get(a, a) for a in extra] or ["--lgm", str(files[LGM])]
    code, output = cli(["reconstruct", str(run), *model, "--input-size", str(SIZE)], capsys)
    assert code == 2 and message in output, output
    assert output.startswith("error: ") and output.count("\n") == 1 and "Traceback" not in output
    assert not (run / RECONSTRUCTION_FOLDER).exists()


def test_an_existing_output_is_never_overwritten(files, tmp_path, capsys, no_loading):
    run = write_result(tmp_path / "run")
    kept = run / RECONSTRUCTION_FOLDER / "mine.txt"
    kept.parent.mkdir()
    kept.write_text("keep me")
    code, output = cli(["reconstruct", str(run), "--lgm", str(files[LGM]), "--input-size", str(SIZE)], capsys)
    assert code == 2 and "already exists and is not empty; nothing is overwritten" in output
    assert sorted(p.name for p in kept.parent.iterdir()) == ["mine.txt"] and kept.read_text() == "keep me"


def test_a_file_that_is_not_a_video_is_named(files, tmp_path, capsys, no_loading):
    run = write_result(tmp_path / "run")
    image = str(run / "frames" / "f000_v00.png")
    code, output = cli(["reconstruct", "--videos", image, image, image, image, "--cameras",
                        str(run / "cameras.json"), "--lgm", str(files[LGM])], capsys)
    assert code == 2 and "f000_v00.png is an image, not a video" in output, output
    text = tmp_path / "view.mp4"
    text.write_text("not a video")
    code, output = cli(["reconstruct", "--videos", *[str(text)] * 4, "--cameras", str(run / "cameras.json"),
                        "--lgm", str(files[LGM])], capsys)
    assert code == 2 and "view.mp4: not a readable video" in output, output


def test_a_model_file_of_another_kind_names_both(files, tmp_path, capsys):
    run = write_result(tmp_path / "run")
    code, output = cli(["reconstruct", str(run), "--lgm", str(files[L4GM]), "--input-size", str(SIZE)], capsys)
    assert code == 2 and "recon.safetensors" in output and "L4GM's reconstruction model" in output
    assert "not LGM" in output and not (run / RECONSTRUCTION_FOLDER).exists()


@pytest.mark.parametrize("options, message", [
    (["--lgm", "LGM", "--interp", "INTERP"], "--interp: L4GM options"),
    (["--lgm", "LGM", "--moving-views"], "--moving-views: L4GM options"),
])
def test_l4gm_options_with_lgm_are_refused(files, tmp_path, capsys, no_loading, options, message):
    names = {"LGM": str(files[LGM]), "INTERP": str(files[L4GM_INTERP])}
    run = write_result(tmp_path / "run")
    code, output = cli(["reconstruct", str(run), *[names.get(o, o) for o in options]], capsys)
    assert code == 2 and message in output, output


def test_generate_refuses_reconstruction_options_without_reconstruct(files, weights, tmp_path, capsys):
    base = ["generate", "--mvdream", str(weights.mvdream), "--motion", str(weights.motion["v2"]), "--prompt", "x",
            "--out", str(tmp_path / "o")]
    code, output = cli([*base, "--lgm", str(files[LGM])], capsys)
    assert code == 2 and "--lgm: reconstruction options; add --reconstruct" in output
    code, output = cli([*base, "--reconstruct"], capsys)
    assert code == 2 and "--reconstruct needs --lgm FILE" in output
    code, output = cli([*base, "--reconstruct", "--lgm", str(files[LGM]), "--views", "8"], capsys)
    assert code == 2 and "8 views, but LGM and L4GM take exactly 4" in output
    code, output = cli([*base, "--reconstruct", "--lgm", str(files[LGM]), "--size", "72"], capsys)
    assert code == 2 and "square frames of 256 px" in output
    assert not (tmp_path / "o").exists()


def test_generate_reconstructs_each_prompt_s_video(files, weights, tmp_path, capsys):
    """--reconstruct: every generated video gets its reconstruction/ (the Gaussians of the frames just written)."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red car, 3d asset\na blue bird, 3d asset\n")
    code, output = cli(["generate", "--mvdream", str(weights.mvdream), "--motion", str(weights.motion["v2"]),
                        "--prompts", str(prompts), "--frames", "2", "--size", str(SIZE), "--steps", "1", "--seed",
                        "3", "--out", str(tmp_path / "out"), "--device", "cpu", "--reconstruct", "--lgm",
                        str(files[LGM]), "--input-size", str(SIZE), "--no-preview", "--no-score"], capsys)
    assert code == 0, output
    folders = sorted((tmp_path / "out").iterdir())
    for folder, prompt in zip(folders, ("a red car, 3d asset", "a blue bird, 3d asset")):
        out = folder / RECONSTRUCTION_FOLDER
        info = json.loads((out / INFO_FILE).read_text())
        assert info["output_to_input_frame"] == [0, 1] and info["video"]["prompt"] == prompt
        assert (out / ply_name(1)).is_file()
        # The generated 15-degree cameras: the rays follow them, and the warning says so.
        assert any("elevation is 15.0 degrees" in warning for warning in info["warnings"])
    assert len(folders) == 2


def test_animate_reconstructs_with_l4gm_and_refuses_a_taken_output_before_loading(files, animate3d_weights,
                                                                                tmp_path, capsys, monkeypatch):
    from vividzoo_core.synthetic_weights import synthetic_condition_views

    views = []
    for index, view in enumerate(synthetic_condition_views(SIZE)):
        views.append(tmp_path / f"{index}.png")
        Image.fromarray(view).save(views[-1])
    a3d = animate3d_weights
    argv = ["animate", "--mvdream", str(a3d.mvdream), "--animate3d", str(a3d.full), "--clip-vision",
            str(a3d.clip_vision), "--images", *map(str, views), "--prompt", "a dragon roars", "--frames", "2",
            "--size", str(SIZE), "--steps", "1", "--free-init-iterations", "1", "--seed", "7", "--device", "cpu",
            "--out", str(tmp_path / "out"), "--reconstruct", "--l4gm", str(files[L4GM]), "--interp",
            str(files[L4GM_INTERP]), "--input-size", str(SIZE), "--no-preview"]
    code, output = cli(argv, capsys)
    assert code == 0, output
    info = json.loads((tmp_path / "out" / RECONSTRUCTION_FOLDER / INFO_FILE).read_text())
    assert info["output_to_input_frame"] == [0, None, None, 1] and info["fps"] == 3 * info["video"]["fps"]
    assert len(info["score"]["psnr_db"]) == 2
    # Again into the same folder: its reconstruction/ is taken, refused before Animate3D loads.
    from vividzoo_core.animate3d_pipeline import Animate3DPipeline

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the taken output folder was refused")

    monkeypatch.setattr(Animate3DPipeline, "from_files", refuse)
    code, output = cli(argv, capsys)
    assert code == 2 and "reconstruction already exists and is not empty" in output


def test_a_rescued_video_is_read_like_its_frames(files, tmp_path, capsys):
    """frames.npz (what a failed save keeps: uint8 frames, cameras, fps) gives the Gaussians of the PNG frames."""
    run = write_result(tmp_path / "run")
    video = read_result(run)
    rescued = tmp_path / "rescued"
    rescued.mkdir()
    rescue_frames(video.frames, rescued / "frames.npz", video.cameras, 12.0)
    code, output = cli(["reconstruct", str(rescued), "--lgm", str(files[LGM]), "--input-size", str(SIZE),
                        "--no-preview", "--no-score", "--device", "cpu"], capsys)
    assert code == 0, output
    pipeline = ReconstructionPipeline.from_files(LGM, files[LGM], device="cpu", input_size=SIZE)
    expected = pipeline.reconstruct(video, score=False)
    out = rescued / RECONSTRUCTION_FOLDER
    assert (out / ply_name(1)).read_bytes() == ply_bytes(expected.gaussians[1])
    assert json.loads((out / INFO_FILE).read_text())["fps"] == 12.0

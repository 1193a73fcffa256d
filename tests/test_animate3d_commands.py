"""``vividzoo animate`` and ``vividzoo generate --animate3d`` on tiny random files, as a user types them: the same
outputs as ``generate``, the same video as the library gives, and bad input refused before any weights load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vividzoo_core.animate3d_pipeline import Animate3DPipeline, Animate3DSettings, MVDreamViewsThenAnimate3D
from vividzoo_core.cli import main
from vividzoo_core.pipeline import VividZooPipeline
from vividzoo_core.settings import GenerationSettings
from vividzoo_core.synthetic_weights import synthetic_condition_views
from vividzoo_core.video import CONDITION_FOLDER, frame_name, view_video_name

SMALL = ["--frames", "3", "--size", "64", "--steps", "1", "--free-init-iterations", "1", "--seed", "7",
         "--device", "cpu"]


@pytest.fixture(scope="module")
def view_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("views")
    paths = []
    for index, view in enumerate(synthetic_condition_views(64)):
        paths.append(folder / f"{index}.png")
        Image.fromarray(view).save(paths[-1])
    return paths


def read_frames(folder, frames: int) -> np.ndarray:
    return np.stack([[np.asarray(Image.open(folder / frame_name(f, v))) for v in range(4)] for f in range(frames)])


def refuse_loading(monkeypatch):
    """Any weights loading fails the test: what these inputs must be refused before."""
    def no_loading(*args, **kwargs):
        raise AssertionError("weights were loaded before the bad input was refused")

    monkeypatch.setattr(Animate3DPipeline, "from_files", no_loading)
    monkeypatch.setattr(VividZooPipeline, "from_files", no_loading)


def test_animate_writes_what_generate_writes_and_the_library_s_video(animate3d_weights, view_files, tmp_path, capsys):
    files = animate3d_weights
    out = tmp_path / "out"
    assert main(["animate", "--mvdream", str(files.mvdream), "--animate3d", str(files.full), "--clip-vision",
                 str(files.clip_vision), "--images", *map(str, view_files), "--prompt", "a dragon roars",
                 *SMALL, "--out", str(out)]) == 0
    names = {path.name for path in out.iterdir()}
    assert {"grid.mp4", "grid.webp", "cameras.json", "transforms.json", "info.json", "frames", CONDITION_FOLDER,
            *map(view_video_name, range(4))} <= names
    info = json.loads((out / "info.json").read_text())
    assert info["model"] == "Animate3D" and info["seed"] == 7 and info["steps"] == 1
    views = np.stack([np.asarray(Image.open(out / CONDITION_FOLDER / f"{v}.png")) for v in range(4)])
    assert np.array_equal(views, synthetic_condition_views(64))  # the views it was given, in their order
    pipeline = Animate3DPipeline.from_files(files.mvdream, files.full, files.clip_vision, device="cpu", dtype="fp32")
    expected = pipeline.generate(Animate3DSettings("a dragon roars", frames=3, width=64, height=64, steps=1,
                                                   free_init_iterations=1, seed=7), synthetic_condition_views(64))
    written = read_frames(out, 3).astype(np.float32) / 255
    assert np.abs(written - expected.frames.numpy()).max() <= 0.5 / 255 + 1e-6


def test_generate_animate3d_animates_mvdreams_views_of_the_prompt(animate3d_weights, tmp_path):
    files = animate3d_weights
    out = tmp_path / "out"
    assert main(["generate", "--mvdream", str(files.mvdream), "--animate3d", str(files.modules), "--ip-adapter",
                 str(files.ip_adapter_bin), "--clip-vision", str(files.clip_vision), "--prompt", "a fox, 3d asset",
                 *SMALL, "--out", str(out)]) == 0
    mvdream = VividZooPipeline.from_files(files.mvdream, None, device="cpu", log=lambda message: None)
    animate = Animate3DPipeline.from_files(files.mvdream, files.modules, files.clip_vision, files.ip_adapter_bin,
                                           device="cpu", dtype="fp32")
    video = MVDreamViewsThenAnimate3D(mvdream, animate).generate(
        Animate3DSettings("a fox, 3d asset", frames=3, width=64, height=64, steps=1, free_init_iterations=1, seed=7))
    views = np.stack([np.asarray(Image.open(out / CONDITION_FOLDER / f"{v}.png")) for v in range(4)]) / 255
    assert np.abs(views - video.condition_views.numpy()).max() <= 0.5 / 255 + 1e-6
    # The views are MVDream's at Animate3D's condition cameras, with the run's prompt and seed.
    alone = mvdream.generate(GenerationSettings("a fox, 3d asset", views=4, frames=1, width=64, height=64, steps=1,
                                                seed=7, elevation=15, azimuth_start=90, beta_schedule="scaled_linear"))
    torch.testing.assert_close(video.condition_views, alone.frames[0])
    info = json.loads((out / "info.json").read_text())
    assert info["condition_views"]["made_by"].startswith("MVDream") and info["model"] == "Animate3D"


@pytest.mark.parametrize("extra, message", [
    (["--motion", "{motion}"], "--motion: Vivid-ZOO options; with --animate3d the 4 views"),
    (["--views", "8"], "--views: Vivid-ZOO options"),
    (["--elevation", "30"], "--elevation: Vivid-ZOO options"),
    ([], None),  # the control: these files and options pass the checks
])
def test_generate_animate3d_refuses_vividzoo_options_before_loading(animate3d_weights, tmp_path, capsys, monkeypatch,
                                                                     extra, message):
    files = animate3d_weights
    refuse_loading(monkeypatch)
    argv = [
        "generate",
        "--mvdream",
        str(files.mvdream),
        "--animate3d",
        str(files.full),
        "--clip-vision",
        str(files.clip_vision),
        "--prompt",
        "p",
        "--out",
        str(tmp_path),
        *[a.format(motion=files.motion) for a in extra],
    ]
    if message is None:
        with pytest.raises(AssertionError, match="weights were loaded"):
            main(argv)
        return
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_animate3d_options_without_animate3d_are_refused(animate3d_weights, tmp_path, capsys, monkeypatch):
    refuse_loading(monkeypatch)
    argv = ["generate", "--mvdream", str(animate3d_weights.mvdream), "--motion", str(animate3d_weights.motion),
            "--clip-vision", str(animate3d_weights.clip_vision), "--prompt", "p", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "--clip-vision: Animate3D options; add --animate3d FILE" in capsys.readouterr().err
    assert main(argv[:3] + argv[7:]) == 2  # neither --motion nor --animate3d
    assert "give --motion FILE" in capsys.readouterr().err


def test_bad_condition_views_are_one_line_errors_before_loading(animate3d_weights, view_files, tmp_path, capsys,
                                                               monkeypatch):
    files = animate3d_weights
    refuse_loading(monkeypatch)
    small = tmp_path / "small.png"
    Image.fromarray(synthetic_condition_views(32)[0]).save(small)
    wide = tmp_path / "wide.png"
    Image.new("RGB", (96, 64)).save(wide)
    base = ["animate", "--mvdream", str(files.mvdream), "--animate3d", str(files.full), "--clip-vision",
            str(files.clip_vision), "--prompt", "p", "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as parsed:
        main([*base, "--images", *map(str, view_files[:3])])  # 3 views
    assert parsed.value.code == 2 and "--images: expected 4 arguments" in capsys.readouterr().err
    assert main([*base, "--images", *map(str, view_files[:3]), str(small)]) == 2
    assert "the 4 views must have the same size, got 64x64, 64x64, 64x64, 32x32" in capsys.readouterr().err
    assert main([*base, "--images", *[str(wide)] * 4]) == 2
    assert "the aspect ratios differ" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--asset", str(small)])
    assert "not a 3D asset file (.png)" in capsys.readouterr().err


def test_the_wrong_files_are_named(animate3d_weights, view_files, tmp_path, capsys):
    files = animate3d_weights
    base = ["animate", "--mvdream", str(files.mvdream), "--images", *map(str, view_files), "--prompt", "p",
            "--device", "cpu", "--out", str(tmp_path / "out")]
    assert main([*base, "--animate3d", str(files.motion), "--clip-vision", str(files.clip_vision)]) == 2
    error = capsys.readouterr().err
    assert (
        error.startswith(f"error: {files.motion.name}: this is an AnimateDiff motion module") and error.count("\n") == 1
    )
    assert main([*base, "--animate3d", str(files.full), "--clip-vision", str(files.ip_adapter_bin)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {files.ip_adapter_bin.name}") and error.count("\n") == 1


@pytest.mark.parametrize("command", ["animate", "generate"])
def test_the_originals_precision_is_asked_for_by_name(view_files, tmp_path, monkeypatch, command):
    """The original runs in fp32 on CUDA, where ``--dtype auto`` means fp16: ``--dtype fp32`` (docs/animate3d.md)
    reaches the Animate3D pipeline, which then computes in float32 on a GPU too."""
    from vividzoo_core.devices import resolve_dtype

    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("fp32", torch.device("cuda")) == torch.float32

    class Loaded(Exception):
        pass

    asked = []

    def from_files(*args, **kwargs):
        asked.append(args[5] if len(args) > 5 else kwargs["dtype"])
        raise Loaded

    monkeypatch.setattr(Animate3DPipeline, "from_files", from_files)
    monkeypatch.setattr(VividZooPipeline, "from_files", lambda *args, **kwargs: None)  # generate's MVDream views
    weights = ["--mvdream", str(view_files[0]), "--animate3d", str(view_files[0]), "--clip-vision", str(view_files[0])]
    where = ["--images", *map(str, view_files)] if command == "animate" else []
    with pytest.raises(Loaded):
        main([command, *weights, *where, "--prompt", "x", *SMALL, "--dtype", "fp32", "--out", str(tmp_path / "o")])
    assert asked == ["fp32"]

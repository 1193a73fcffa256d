"""Limits that the docs table and the node schemas state, held by running the command line and the nodes.

The option types and widgets are made from the settings table (tests/test_settings_table.py), so a wrong limit
in the table would pass those checks: here the values are written out and must be refused.
- ``context_overlap``: shorter than its window. No window is longer than 32 frames, so 32 is refused even with
  automatic windows; an overlap as long as the windows chosen with ``context_frames`` for a longer video is refused
  too (one window covering the video has no neighbour to overlap).
- ``ip_scale``: not negative (a negative weight of the condition views' image tokens steers away from them).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch

from vividzoo_core.cli import main
from vividzoo_core.errors import VividZooError
from vividzoo_core.settings import MOST_FRAMES_AT_ONCE, GenerationSettings

LONGEST_WINDOW = 32  # AnimateDiff v2/v3 and Animate3D's position encodings: the longest window of any module


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of ``vividzoo ARGV`` (argparse exits for an option out of its range)."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


@pytest.fixture
def any_file(tmp_path) -> Path:
    """The refusals come before any file is read: any existing file does for the weights."""
    path = tmp_path / "weights.ckpt"
    path.write_bytes(b"never read")
    return path


def generate(any_file: Path, *options: str) -> list[str]:
    return ["generate", "--mvdream", str(any_file), "--motion", str(any_file), "--prompt", "x",
            "--out", str(any_file.parent / "out"), *options]


def animate3d(command: str, any_file: Path, *options: str) -> list[str]:
    weights = ["--mvdream", str(any_file), "--animate3d", str(any_file), "--clip-vision", str(any_file)]
    if command == "generate":
        return ["generate", *weights, "--prompt", "x", "--out", str(any_file.parent / "out"), *options]
    return ["animate", *weights, "--images", *[str(any_file)] * 4, "--prompt", "x",
            "--out", str(any_file.parent / "out"), *options]


def one_error_line(err: str, *words: str) -> bool:
    """The last line is the error (argparse prints the usage above it), naming the value and what fits."""
    last = err.strip().splitlines()[-1]
    return "error:" in last and all(word in last for word in words) and "Traceback" not in err


def test_the_longest_window_is_32_frames():
    assert MOST_FRAMES_AT_ONCE == LONGEST_WINDOW


@pytest.mark.parametrize("window", [[], ["--context-frames", "0"], ["--context-frames", "32"]],
                         ids=["automatic", "automatic_0", "longest"])
def test_the_cli_refuses_an_overlap_of_the_longest_window(any_file, capsys, window):
    code, err = cli(generate(any_file, *window, "--context-overlap", str(LONGEST_WINDOW)), capsys)
    assert code == 2 and one_error_line(err, "overlap", "32", "31"), err


def test_the_cli_refuses_an_overlap_as_long_as_the_chosen_window(any_file, capsys):
    code, err = cli(generate(any_file, "--frames", "20", "--context-frames", "8", "--context-overlap", "8"), capsys)
    assert code == 2 and one_error_line(err, "context_overlap 8", "context_frames 8", "from 0 to 7"), err


def test_an_overlap_one_shorter_than_the_window_fits_and_one_window_has_no_overlap():
    GenerationSettings("x", frames=20, context_frames=8, context_overlap=7).check()
    GenerationSettings("x", frames=20, context_overlap=LONGEST_WINDOW - 1).check()
    GenerationSettings("x", frames=4, context_frames=4, context_overlap=4).check()  # one window: nothing overlaps
    with pytest.raises(VividZooError, match="context_overlap 8 is not shorter than the window"):
        GenerationSettings("x", frames=20, context_frames=8, context_overlap=8).check()
    with pytest.raises(VividZooError, match="context_overlap 9 is not shorter than the window"):
        GenerationSettings("x", frames=9, context_frames=8, context_overlap=9).check()


@pytest.mark.parametrize("command", ["generate", "animate"])
@pytest.mark.parametrize("scale", ["-0.5", "-0.01"])
def test_the_cli_refuses_a_negative_ip_scale(any_file, capsys, command, scale):
    code, err = cli(animate3d(command, any_file, "--ip-scale", scale), capsys)
    assert code == 2 and one_error_line(err, "--ip-scale", scale), err


# -- the nodes (ComfyUI played by tests/fake_comfyui.py) -----------------------------------------------------

def pack_error(fake_pack) -> type:
    """The pack's VividZooError as the fake host imported it (another module than ``vividzoo_core.errors``)."""
    return importlib.import_module(fake_pack.__name__.rsplit(".", 1)[0] + ".vividzoo_core.errors").VividZooError


class Sampled(Exception):
    """Raised where the sampler node would patch the model or sample: its checks let the values through."""


def never(*args, **kwargs):
    raise Sampled


@pytest.fixture
def sampler(fake_pack, monkeypatch):
    """The Vivid-ZOO Sampler node's ``execute``; past its checks it patches the model and runs ComfyUI's KSampler
    routine (``nodes.common_ksampler``), both replaced by :func:`never`."""
    host_nodes = ModuleType("nodes")  # ComfyUI's top-level nodes.py
    host_nodes.common_ksampler = never
    monkeypatch.setitem(sys.modules, "nodes", host_nodes)
    monkeypatch.setattr(fake_pack.sampler, "patch_vividzoo", never)
    motion = SimpleNamespace(max_frames=LONGEST_WINDOW, name="mm_sd_v15_v2.ckpt")
    cameras = SimpleNamespace(views=2)

    def run(context_frames: int, context_overlap: int, frames: int = 40):
        latent = {"samples": torch.zeros(cameras.views * frames, 4, 1, 1)}
        return fake_pack.sampler.VividZooSampler.execute(
            None, motion, cameras, None, None, latent, seed=0, steps=1, cfg=7.5, sampler_name="ddim",
            scheduler="ddim_uniform", beta_schedule="linear", context_frames=context_frames,
            context_overlap=context_overlap, denoise=1.0)

    return run


@pytest.mark.parametrize("context_frames, context_overlap, message", [
    (0, 32, "context_overlap is 32, out of range; use from 0 to 31"),
    (32, 32, "context_overlap (is 32, out of range; use|32 is not shorter than the window of context_frames 32; "
             "use an overlap) from 0 to 31"),
    (8, 8, "context_overlap 8 is not shorter than the window of context_frames 8 .40 frames are denoised in "
           "windows.; use an overlap from 0 to 7"),
])
def test_the_sampler_node_refuses_an_overlap_of_the_window(fake_pack, sampler, context_frames, context_overlap,
                                                           message):
    with pytest.raises(pack_error(fake_pack), match=message):
        sampler(context_frames, context_overlap)


@pytest.mark.parametrize("context_frames, context_overlap, frames", [
    (8, 7, 40), (0, LONGEST_WINDOW - 1, 40), (32, 31, 40), (8, 8, 8), (4, 4, 3)])
def test_the_sampler_node_goes_past_its_checks_with_a_shorter_overlap_or_one_window(sampler, context_frames,
                                                                                    context_overlap, frames):
    with pytest.raises(Sampled):
        sampler(context_frames, context_overlap, frames)


@pytest.mark.parametrize("scale", [-0.5, -0.01])
def test_the_animate3d_condition_node_refuses_a_negative_ip_scale(fake_pack, scale):
    node = fake_pack.animate3d.Animate3DCondition
    problem = node.validate_inputs(ip_scale=scale)
    assert isinstance(problem, str) and f"ip_scale is {scale}" in problem, problem
    mvdream = SimpleNamespace(model=SimpleNamespace(model_config=object.__new__(fake_pack.mvdream_model.MVDreamSD15)))
    assert fake_pack.mvdream_model.is_mvdream_model(mvdream)
    with pytest.raises(pack_error(fake_pack), match=f"ip_scale is {scale:g}, out of range; use from 0 to 2"):
        node.execute(mvdream, SimpleNamespace(max_frames=LONGEST_WINDOW), None, None, frames=16, width=256,
                     height=256, ip_scale=scale)
    assert node.validate_inputs(ip_scale=0.0) is True

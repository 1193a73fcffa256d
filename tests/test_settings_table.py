"""One table of generation settings (vividzoo_core/settings.py): every node input and every command-line
option that sets one of them has the table's default, limits, step and choices, and GenerationSettings
refuses what the table refuses. A limit typed anew anywhere fails here."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest
from fake_comfyui import node_info

from vividzoo_core.animate3d_pipeline import STEPS as ANIMATE3D_STEPS
from vividzoo_core.animate3d_pipeline import Animate3DSettings
from vividzoo_core.cli import build_parser
from vividzoo_core.commands import options
from vividzoo_core.errors import VividZooError
from vividzoo_core.settings import ELEVATION, RECONSTRUCTION_SIZE, SEED, SETTINGS, WIDTH, GenerationSettings

# Node inputs named otherwise than the setting whose range they share.
NODE_ALIASES = {"elevation_end": ELEVATION, "input_size": RECONSTRUCTION_SIZE}
# Numeric node inputs that are not generation settings (each with its own meaning).
NODE_ONLY = {"azimuth_span", "denoise", "view", "columns", "size"}
# Where a node's purpose asks for another default than the table's.
NODE_DEFAULTS = {
    ("VividZoo_OrbitTrajectory", "turn"): 360.0,  # the turntable node turns unless told otherwise
    ("VividZoo_Sampler", "seed"): 0,  # ComfyUI's widget needs a number; 'randomize' after each run makes it random
}
CLI_ALIASES = {"size": WIDTH}
# Commands that generate videos; the dataset commands' --views, --frames, --size ... describe data, not generation.
GENERATING_COMMANDS = {"generate", "animate", "eval"}
# Where a model samples otherwise by default: Animate3D's inference.yaml samples 25 steps.
OPTION_DEFAULTS = {("animate", "steps"): ANIMATE3D_STEPS}
NUMBER_TYPES = {"INT", "FLOAT"}


def node_inputs(pack) -> list[tuple[str, str, str, object, dict]]:
    """``(node id, input name, kind, widget type, options)`` of every widget input of every node."""
    import asyncio

    extension = asyncio.run(pack.comfy_entrypoint())
    found = []
    for node in asyncio.run(extension.get_node_list()):
        info = node_info(node)
        for section in info["input"].values():
            for name, spec in section.items():
                kind, widget = spec[0], (spec[1] if len(spec) > 1 else {})
                found.append((node.GET_SCHEMA().node_id, name, kind, widget))
    return found


def cli_options() -> list[tuple[str, argparse.Action]]:
    """``(command path, action)`` of every option of every command."""
    found = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}".strip())
            elif action.option_strings:
                found.append((path, action))

    walk(build_parser(), "")
    return found


def expected_node_default(node_id: str, name: str, setting) -> object:
    if (node_id, name) in NODE_DEFAULTS:
        return NODE_DEFAULTS[node_id, name]
    return setting.low if setting.default is None else setting.default


def test_every_node_input_of_a_setting_follows_the_table(fake_pack):
    checked = set()
    for node_id, name, kind, widget in node_inputs(fake_pack):
        if kind not in NUMBER_TYPES and kind != "COMBO" and not isinstance(kind, list):
            continue  # a socket (MODEL, CONDITIONING ...), not a widget
        setting = SETTINGS.get(name) or NODE_ALIASES.get(name)
        if setting is None:
            assert kind not in NUMBER_TYPES or name in NODE_ONLY, (
                f"{node_id}.{name} is a number input that is neither a setting of vividzoo_core/settings.py nor "
                "listed as node-only here")
            continue
        where = f"{node_id}.{name}"
        if setting.choices is not None:
            assert (kind if isinstance(kind, list) else widget.get("options")) == list(setting.choices), where
            assert widget["default"] == setting.default, where
        else:
            assert kind == ("INT" if setting.kind is int else "FLOAT"), where
            assert (widget["min"], widget["max"]) == (setting.low, setting.high), where
            assert widget["default"] == expected_node_default(node_id, name, setting), where
            if setting.step is not None:
                assert widget["step"] == setting.step, where
        checked.add(setting.name)
    assert {"views", "frames", "width", "height", "steps", "cfg", "seed", "elevation", "azimuth_start", "turn",
            "beta_schedule", "context_frames", "context_overlap", "fps"} <= checked


def test_every_option_of_a_setting_follows_the_table():
    checked = set()
    for path, action in cli_options():
        name = action.dest
        setting = CLI_ALIASES.get(name) or SETTINGS.get(name)
        if setting is None or path not in GENERATING_COMMANDS:
            continue
        where = f"vividzoo {path} {action.option_strings[0]}"
        assert action.default == OPTION_DEFAULTS.get((path, setting.name), setting.default), where
        if setting.choices is not None:
            assert tuple(action.choices) == setting.choices, where
        elif setting.kind is str:
            assert action.type in (None, str), where
        else:
            kind = options.int_range if setting.kind is int else options.float_range
            assert isinstance(action.type, kind), f"{where} is not checked against the table"
            assert (action.type.low, action.type.high) == (setting.low, setting.high), where
            if setting.kind is int:
                assert action.type.multiple == setting.multiple, where
        checked.add((path, setting.name))
    generate = {name for path, name in checked if path == "generate"}
    assert generate == set(SETTINGS) - {"height"}, "every setting is an option of vividzoo generate (--size: both)"
    assert {name for path, name in checked if path == "eval"} >= {"views", "frames", "width", "steps", "cfg", "seed"}
    assert {name for path, name in checked if path == "animate"} == {
        "frames", "width", "steps", "cfg", "seed", "negative", "fps", "ip_scale", "free_init_iterations"}


@pytest.mark.parametrize("kind", [GenerationSettings, Animate3DSettings])
def test_generation_settings_default_to_the_table(kind):
    settings = kind("a prompt")
    for field in dataclasses.fields(settings):
        if field.name in SETTINGS and field.name != "seed":
            expected = (
                ANIMATE3D_STEPS if (kind, field.name) == (Animate3DSettings, "steps") else SETTINGS[field.name].default
            )
            assert getattr(settings, field.name) == expected, field.name


def holder(name: str) -> type:
    """The settings dataclass that has the setting ``name``."""
    return GenerationSettings if name in {f.name for f in dataclasses.fields(GenerationSettings)} else Animate3DSettings


@pytest.mark.parametrize("name", [name for name, s in SETTINGS.items() if s.kind is not str])
def test_generation_settings_refuse_what_the_table_refuses(name):
    setting, kind = SETTINGS[name], holder(name)
    just_above = setting.high + (1 if setting.kind is int else 0.5)
    shown = str(just_above) if setting.kind is int else f"{just_above:g}"
    fits = {"frames": 2} if kind is Animate3DSettings and name != "frames" else {}  # Animate3D: at most 32 frames
    with pytest.raises(VividZooError, match=re.escape(f"{name} is {shown}, out of range; use from {setting.low:g}")):
        kind("x", **{**fits, name: just_above}).check()
    if not (kind is Animate3DSettings and name == "frames"):  # Animate3D's own limit (32) is below the table's
        kind("x", **{**fits, name: setting.high}).check()  # the limit itself fits


def test_every_setting_belongs_to_a_model():
    fields = {f.name for kind in (GenerationSettings, Animate3DSettings) for f in dataclasses.fields(kind)}
    assert set(SETTINGS) <= fields


def test_an_unset_seed_is_drawn_once_and_kept():
    settings = GenerationSettings("x")
    assert SEED.low <= settings.seed < 2**32
    assert dataclasses.replace(settings, prompt="y").seed == settings.seed
    assert {GenerationSettings("x").seed for _ in range(5)} != {settings.seed}


def test_the_size_option_sets_width_and_height_from_the_table():
    args = build_parser().parse_args(["generate", "--mvdream", __file__, "--motion", __file__, "--prompt", "p",
                                      "--size", "64", "--out", "out"])
    from vividzoo_core.commands.generate import settings_from

    settings = settings_from(args)
    assert (settings.width, settings.height) == (64, 64)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "--mvdream", __file__, "--motion", __file__, "--prompt", "p",
                                   "--size", str(WIDTH.high + 8), "--out", "out"])

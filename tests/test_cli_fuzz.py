"""Bad values for every option of every command give one ``error:`` line and exit status 2, no traceback.

Commands and options are discovered from ``build_parser()``, so a command added later is covered
without editing this file; an option whose type is not one of the checked types in
``cli_options`` fails here until it gets one (or is listed as free text).
"""

from __future__ import annotations

import argparse
import json

import pytest

from vividzoo_core.cameras import orbit
from vividzoo_core.cli import build_parser, main
from vividzoo_core.commands import options as cli_options

FREE_TEXT = {"prompt", "negative"}  # any text is a valid prompt
PATH_VALUES = {
    cli_options.existing_file: ["{missing}", "{folder}"],
    cli_options.existing_dir: ["{missing}", "{file}"],
    cli_options.output_dir: ["{file}", "{file}/inside"],
    cli_options.camera_file: ["{missing}", "{folder}", "{file}", "{wrong_shape_json}", "{bad_matrix_json}"],
    cli_options.resume_from: ["{missing}", "{file}"],
    cli_options.device: ["gpu", "cuda:99", "cpu:1", ""],
    cli_options.existing_path: ["{missing}"],
    cli_options.output_file: ["{folder}", "{file}/inside.png"],
    cli_options.shard: ["3", "x/4", "4/4", "-1/4", "0/0", ""],
    cli_options.orbit_views: ["seven", "1.5", "", "0", "6", "45"],
    cli_options.asset_file: ["{missing}", "{folder}", "{file}", "{missing}.glb"],
}


def bad_values(action: argparse.Action) -> list[str]:
    """Values the option must refuse, made from what its type says would fit."""
    kind = action.type
    if action.nargs == 0:
        return []  # a flag: given or not
    if action.choices is not None:
        return ["not-a-choice", ""]
    if isinstance(kind, cli_options.int_range):
        values = ["seven", "1.5", "", "nan"]
        values += [str(kind.low - 1)] if kind.low is not None else []
        values += [str(kind.high + 1)] if kind.high is not None else []
        values += [str((kind.low or 0) + 1)] if kind.multiple > 1 else []
        return values
    if isinstance(kind, cli_options.float_range):
        values = ["seven", "", "nan", "inf", "-inf"]
        if kind.low is not None:
            values.append(f"{kind.low:g}" if kind.low_open else f"{kind.low - 1:g}")
        if kind.high is not None:
            values.append(f"{kind.high:g}" if kind.high_open else f"{kind.high + 1:g}")
        return values
    if isinstance(kind, cli_options.float_span):
        return ["seven", "", "nan", f"{kind.low - 1:g}", f"{kind.high + 1:g}", f"{kind.high:g}:{kind.low:g}", "1:x"]
    if isinstance(kind, cli_options.named_value):
        return ["no-equals-sign", "=x", "bad name=x", "-x=y"]
    if kind in PATH_VALUES:
        return PATH_VALUES[kind]
    assert action.dest in FREE_TEXT, (
        f"option {action.option_strings or action.dest} has an unchecked type {kind!r}: give it a type from "
        f"vividzoo_core/commands/options.py (or list it in FREE_TEXT if any text fits)"
    )
    return []


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield path, parser
    for action in subcommands:
        for name, subparser in action.choices.items():
            yield from commands(subparser, path + (name,))


def cases():
    for path, parser in commands(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = action.option_strings[-1] if action.option_strings else action.dest
            for value in bad_values(action):
                yield pytest.param(path, name, value, id=f"{' '.join(path)} {name}={value}")
            if action.nargs == 0:
                yield pytest.param(path, f"{action.option_strings[-1]}=yes", None, id=f"{' '.join(path)} {name}=yes")


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "a_file.txt").write_text("not what any option wants\n")
    (root / "a_folder").mkdir()
    (root / "cameras_wrong_shape.json").write_text(json.dumps({"cameras": "four"}))
    (root / "cameras_bad_matrix.json").write_text(json.dumps([[1, 2, 3]]))
    return {"missing": str(root / "missing"), "folder": str(root / "a_folder"), "file": str(root / "a_file.txt"),
            "wrong_shape_json": str(root / "cameras_wrong_shape.json"),
            "bad_matrix_json": str(root / "cameras_bad_matrix.json")}


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def assert_one_line_error(code: int, output: str, names: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and errors[0] == lines[-1], output
    assert names in errors[0], f"the error does not name {names}: {errors[0]}"


@pytest.mark.parametrize("path, option, value", list(cases()))
def test_bad_value_gives_one_error_line(path, option, value, places, capsys):
    if value is None:  # a flag given a value
        argv, names = [*path, option], option.split("=")[0]
    else:
        value = value.format(**places)
        argv = [*path, f"{option}={value}"] if option.startswith("-") else [*path, value]
        names = f"argument {option}:"
    code, output = run_cli(argv, capsys)
    assert_one_line_error(code, output, names)


def test_every_command_is_covered():
    found = {" ".join(path) for path, _ in commands(build_parser())}
    assert {"generate", "demo", "inspect", "make-test-weights", "dataset check", "dataset make-toy", "train"} <= found


def test_cameras_that_do_not_fit_the_views_are_refused_before_loading(tmp_path, capsys):
    cameras = tmp_path / "cameras.json"
    orbit(3).save(cameras)
    never_read = tmp_path / "weights.pt"
    never_read.write_bytes(b"not a checkpoint: an error about it would mean loading had started")
    code, output = run_cli(["generate", "--mvdream", str(never_read), "--motion", str(never_read), "--prompt", "x",
                            "--views", "4", "--cameras", str(cameras), "--out", str(tmp_path / "out")], capsys)
    assert_one_line_error(code, output, "the cameras have 3 views but the video has 4")


def test_fp16_on_the_cpu_is_refused_before_loading(tmp_path, capsys):
    never_read = tmp_path / "weights.pt"
    never_read.write_bytes(b"not a checkpoint")
    code, output = run_cli(["generate", "--mvdream", str(never_read), "--motion", str(never_read), "--prompt", "x",
                            "--device", "cpu", "--dtype", "fp16", "--out", str(tmp_path / "out")], capsys)
    assert_one_line_error(code, output, "fp16 is not supported on the CPU")

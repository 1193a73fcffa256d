"""The docs say what the code does: every ``vividzoo`` command line in the README and docs/ parses with the
real parser, the settings table is the table of vividzoo_core/settings.py, and every link between the
pages points at a page and a heading that exist."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest
from docs_text import settings_table

from vividzoo_core.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_OPERATORS = {"&&", "||", ";", "|", "&", ">", ">>", "2>&1", "<"}
CODE_BLOCK = re.compile(r"```(?:bash|sh|console)?\n(.*?)```", re.S)
INLINE_CODE = re.compile(r"`([^`\n]+)`")


def untyped_parser() -> argparse.ArgumentParser:
    """The real parser with its value checks off: option names and arity are what the docs must get right."""
    parser = build_parser()
    stack = [parser]
    while stack:
        for action in stack.pop()._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
            else:
                action.type = None
    return parser


def command_arguments(tokens: list[str]) -> list[list[str]]:
    """The arguments of each ``vividzoo`` (or ``python -m vividzoo_core.cli``) command among shell tokens."""
    found = []
    for index, token in enumerate(tokens):
        if token == "vividzoo" or token.endswith("/vividzoo"):
            start = index + 1
        elif token == "vividzoo_core.cli" and index and tokens[index - 1] == "-m":
            start = index + 1
        else:
            continue
        end = next((i for i in range(start, len(tokens)) if tokens[i] in SHELL_OPERATORS), len(tokens))
        found.append(tokens[start:end])
    return found


def code_block_commands(text: str) -> list[str]:
    commands = []
    for block in CODE_BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split, lexer.commenters = True, "#"
            try:
                tokens = list(lexer)
            except ValueError:
                continue
            commands += [" ".join(map(shlex.quote, arguments)) for arguments in command_arguments(tokens)]
    return commands


def inline_commands(text: str) -> list[str]:
    """``vividzoo ...`` written in running text (may use [optional] and a|b notation)."""
    return [code for code in INLINE_CODE.findall(text) if re.match(r"(\S*/)?vividzoo( |$)", code)]


def page_commands() -> list[tuple[str, str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        found += [(page.name, "block", command) for command in code_block_commands(text)]
        found += [(page.name, "inline", command) for command in inline_commands(text)]
    return found


def subcommand_parser(parser: argparse.ArgumentParser, words: list[str]) -> tuple[argparse.ArgumentParser, int]:
    """The parser of the (sub)command the words name, and how many words named it."""
    used = 0
    while True:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or used >= len(words) or words[used] not in sub.choices:
            return parser, used
        parser, used = sub.choices[words[used]], used + 1


COMMANDS = page_commands()


def test_the_docs_show_many_commands():
    assert len([c for c in COMMANDS if c[1] == "block"]) >= 15
    named = {command.split()[0] for _, kind, command in COMMANDS if command.split()}
    named |= {command.split()[1] for _, kind, command in COMMANDS if kind == "inline" and len(command.split()) > 1}
    assert {"generate", "eval", "train", "dataset", "demo", "inspect", "make-test-weights"} <= named


@pytest.mark.parametrize("page, kind, command", COMMANDS, ids=lambda value: str(value)[:60])
def test_every_command_line_in_the_docs_parses(page, kind, command):
    parser = untyped_parser()
    if kind == "block":
        try:
            parser.parse_args(shlex.split(command))
        except SystemExit:
            pytest.fail(f"{page}: `vividzoo {command}` does not parse (see the error above)")
        return
    words = [w.strip("[]") for w in command.split()[1:] if w != "..."]
    target, used = subcommand_parser(parser, words)
    assert used or words == [] or words[0].startswith("-") or words[0].isupper(), (
        f"{page}: `{command}` names no vividzoo command")
    known = {option for action in target._actions for option in action.option_strings}
    for word in words[used:]:
        option = word.split("=")[0]
        if option.startswith("--"):
            assert option in known, (
                f"{page}: `{command}` uses {option}, which `vividzoo {' '.join(words[:used])}` lacks"
            )


def test_an_option_that_does_not_exist_is_caught():
    with pytest.raises(SystemExit):
        untyped_parser().parse_args(shlex.split("generate --mvdream a --motion b --prompt p --out o --sharpness 3"))
    assert command_arguments(shlex.split("cd x && .venv/bin/vividzoo demo --out o > log")) == [["demo", "--out", "o"]]


def test_the_settings_table_in_the_docs_is_the_code_s():
    text = (REPO / "docs" / "command-line.md").read_text()
    assert settings_table() in text, (
        "docs/command-line.md's settings table differs from vividzoo_core/settings.py; paste the output of "
        "`PYTHONPATH=tests python tests/docs_text.py`")


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", re.sub(CODE_BLOCK, "", text), re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return anchors


def test_links_between_pages_point_at_pages_and_headings_that_exist():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name} links to {target}, which does not exist"
            if anchor:
                assert anchor in heading_anchors(linked.read_text()), (
                    f"{page.name} links to a missing heading: {target}"
                )

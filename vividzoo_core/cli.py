"""The ``vividzoo`` command: one module per command in :mod:`vividzoo_core.commands`, assembled here.

Errors about the user's input print one clear line and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .commands import animate, dataset, demo, evaluate, generate, inspect, make_test_weights, reconstruct, train
from .errors import VividZooError

COMMANDS = (generate, animate, reconstruct, demo, inspect, make_test_weights, dataset, train, evaluate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vividzoo", description="Vivid-ZOO: text to multi-view video.")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except VividZooError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

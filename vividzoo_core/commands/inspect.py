"""``vividzoo inspect``: what a checkpoint file is, or why it cannot be used."""

from __future__ import annotations

import argparse
import json

from ..errors import VividZooError
from .options import existing_file


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("inspect", help="say what a checkpoint file is, or why it cannot be used")
    parser.add_argument("path", type=existing_file)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import inspect_checkpoint

    try:
        report = inspect_checkpoint(args.path)
    except VividZooError as error:
        if args.json:
            print(json.dumps({"file": str(args.path), "usable": False, "reason": str(error)}, indent=1))
        else:
            print(f"{args.path}: not usable: {error}")
        return 1
    report["usable"] = True
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{args.path}: {report['description']}")
    for key, value in report.items():
        if key not in ("file", "description", "usable"):
            print(
                f"  {key}: {value:,}" if isinstance(value, int) and not isinstance(value, bool) else f"  {key}: {value}"
            )
    return 0

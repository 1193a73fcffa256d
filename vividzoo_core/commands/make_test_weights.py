"""``vividzoo make-test-weights``: random-weight files in the real formats, for tests and for trying the nodes."""

from __future__ import annotations

import argparse

from .options import existing_dir, output_dir


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("make-test-weights", help="write random-weight files in the real formats")
    destination = parser.add_mutually_exclusive_group(required=True)
    destination.add_argument("directory", type=output_dir, nargs="?")
    destination.add_argument("--comfyui-models", type=existing_dir, metavar="MODELS_DIR",
                             help="ComfyUI's models folder: write TEST-RANDOM-* files into its vividzoo/, "
                                  "animatediff_models/, ipadapter/, clip_vision/ and lgm/ folders, to try the nodes "
                                  "and workflows without real weights")
    parser.add_argument("--full-size", action="store_true", help="real shapes (several GB) instead of tiny ones")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..synthetic_weights import install_comfyui_test_weights, write_test_weights

    if args.comfyui_models:
        install_comfyui_test_weights(args.comfyui_models, full_size=args.full_size, log=print)
    else:
        write_test_weights(args.directory, full_size=args.full_size, log=print)
    return 0

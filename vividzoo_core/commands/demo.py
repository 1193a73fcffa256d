"""``vividzoo demo``: the whole pipeline on random tiny weights, in seconds, with no downloads."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from .options import output_dir

DEMO_PROMPT = "a corgi dog running, 3d asset"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("demo", help="no downloads: random tiny weights, the whole pipeline, in seconds")
    parser.add_argument("--out", type=output_dir, required=True, help="output folder")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    run_demo(args.out)
    return 0


def run_demo(out: Path, log: Callable[[str], None] = print) -> Path:
    from ..generation import generate_prompts
    from ..pipeline import VividZooPipeline
    from ..settings import GenerationSettings
    from ..synthetic_weights import write_test_weights

    start = time.perf_counter()
    weights = write_test_weights(out / "weights")
    log("demo: random tiny weights in the real file formats (the video is noise, the pipeline is real)")
    pipeline = VividZooPipeline.from_files(weights.mvdream, weights.motion["v2"], weights.alignment, "cpu", log=log)
    settings = GenerationSettings(DEMO_PROMPT, views=4, frames=8, width=64, height=64, steps=10, seed=0)
    generate_prompts(pipeline, [DEMO_PROMPT], settings, out, log=log)
    log(f"demo finished in {time.perf_counter() - start:.1f} s")
    return out

"""``vividzoo eval``: FVD, CLIP score and consistency proxies of named runs, as the paper's Table 1.

Every input (run folders, model files, reference dataset) is checked before any generation or model
work; with ``--prompts`` the runs (one per ``--alignment NAME=FILE|none`` and per ``--animate3d NAME=FILE``) are
generated first, all with the same prompts, settings and seed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ..errors import VividZooError
from ..prompts import EVAL_PROMPTS, read_prompts
from .generate import (
    add_animate3d_settings,
    add_video_options,
    animate3d_settings_from,
    settings_from,
)
from .options import add_device_options, existing_dir, existing_file, named_value, output_dir, positive_int


def _alignment_or_none(text: str) -> Path | None:
    return None if text == "none" else existing_file(text)


def register(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("eval", help="FVD, CLIP score and consistency proxies of runs (the paper's Table 1)")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--run",
        dest="runs",
        action="append",
        type=named_value(existing_dir, "FOLDER"),
        metavar="NAME=FOLDER",
        help="a run: the output folder of `vividzoo generate --prompts` (repeat)",
    )
    source.add_argument("--prompts", nargs="?", const=EVAL_PROMPTS, type=existing_file, metavar="FILE",
                        help="generate the runs first from these prompts (no FILE: the shipped eval_prompts.txt)")
    evaluate.add_argument("--clip", type=existing_dir, metavar="FOLDER",
                          help="local transformers CLIPModel folder (e.g. openai/clip-vit-large-patch14)")
    evaluate.add_argument("--i3d", type=existing_file, metavar="FILE", help="StyleGAN-V's i3d_torchscript.pt (for FVD)")
    evaluate.add_argument("--reference", type=existing_dir, metavar="DATASET",
                          help="held-out real multi-view videos in the dataset format (for FVD)")
    evaluate.add_argument("--reference-stride", type=positive_int, default=3,
                          help="frame stride of reference clips (default 3, the training stride)")
    evaluate.add_argument("--out", type=output_dir, required=True, help="folder for eval.txt/csv/json/png")
    generation = evaluate.add_argument_group("with --prompts: the runs to generate (same seed and settings for all)")
    generation.add_argument("--mvdream", type=existing_file, help="MVDream checkpoint, e.g. sd-v1.5-4view.pt")
    generation.add_argument("--motion", type=existing_file, help="AnimateDiff motion module, e.g. mm_sd_v15_v2.ckpt")
    generation.add_argument("--alignment", dest="alignments", action="append", metavar="NAME=FILE|none",
                            type=named_value(_alignment_or_none, "FILE|none"),
                            help="one run per use: trained alignment layers, or none for training-free (repeat)")
    generation.add_argument("--animate3d", dest="animate3d_runs", action="append", metavar="NAME=FILE",
                            type=named_value(existing_file, "FILE"),
                            help="one run per use: Animate3D's trained model; MVDream makes the views of each prompt "
                                 "(repeat; needs --clip-vision)")
    generation.add_argument("--clip-vision", type=existing_file, metavar="FILE",
                            help="CLIP ViT-H/14 image encoder, for --animate3d runs")
    generation.add_argument("--ip-adapter", type=existing_file, metavar="FILE",
                            help="ip-adapter_sd15.bin or .safetensors, for --animate3d runs of the modules-only file")
    add_video_options(generation)
    add_animate3d_settings(generation)
    add_device_options(evaluate)
    evaluate.set_defaults(handler=run)


def _check_arguments(args: argparse.Namespace) -> None:
    if not args.clip and not args.i3d:
        raise VividZooError("nothing to measure: give --clip FOLDER (CLIP score, proxies) and/or --i3d FILE "
                            "with --reference DATASET (FVD)")
    if bool(args.i3d) != bool(args.reference):
        raise VividZooError("FVD needs both --i3d FILE and --reference DATASET")
    names = [name for name, _ in (args.runs or (args.alignments or []) + (args.animate3d_runs or []))]
    if len(set(names)) != len(names):
        raise VividZooError(f"run names must differ; got {names}")
    if args.prompts is None:
        return
    if not (args.alignments or args.animate3d_runs):
        raise VividZooError("--prompts generates runs: give one --alignment NAME=FILE|none (Vivid-ZOO) or "
                            "--animate3d NAME=FILE (Animate3D) per run")
    needed = [("--mvdream", args.mvdream), ("--motion", args.motion if args.alignments else True),
              ("--clip-vision", args.clip_vision if args.animate3d_runs else True)]
    missing = [option for option, value in needed if not value]
    if missing:
        raise VividZooError(f"the runs to generate need {', '.join(missing)} FILE")
    if args.animate3d_runs and args.views != 4:
        raise VividZooError(f"--views {args.views}: Animate3D makes 4 views, so every run of this comparison needs 4")
    if args.animate3d_runs:
        animate3d_settings_from(args).check()


def run(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..evaluation.evaluate import evaluate_runs, generate_runs
    from ..evaluation.fvd import MIN_I3D_FRAMES, reference_clips
    from ..evaluation.runs import check_comparable, read_run
    from ..settings import random_seed

    if args.seed is None:  # one seed for every run, so they are compared on the same noise
        args.seed = random_seed()
    _check_arguments(args)
    device = resolve_device(args.device)
    prompts = read_prompts(args.prompts) if args.prompts is not None else None
    runs = None if prompts else [read_run(name, folder) for name, folder in args.runs]
    if runs:
        check_comparable(runs)
    else:  # a bad model file stops here, not after the runs before it were generated
        from ..checkpoints import load_alignment, load_animate3d

        for _, alignment in args.alignments or []:
            if alignment is not None:
                load_alignment(alignment)
        for _, model in args.animate3d_runs or []:
            load_animate3d(model)
    frames, size = (args.frames, args.size) if prompts else (runs[0].results[0].frames, runs[0].results[0].size)
    if args.i3d and frames < MIN_I3D_FRAMES:
        raise VividZooError(f"FVD needs clips of at least {MIN_I3D_FRAMES} frames (the standard is 16); "
                            f"the videos have {frames}")
    scorer, detector = _load_models(args, device)
    reference = reference_clips(args.reference, frames, args.reference_stride, size) if detector else None
    if prompts:
        runs = generate_runs(_planned_runs(args), prompts, args.out)
    evaluate_runs(runs, scorer, detector, reference, args.out)
    return 0


def _planned_runs(args: argparse.Namespace) -> list:
    """One planned run per --alignment and --animate3d, each pipeline loaded only when its run starts."""
    from ..animate3d_pipeline import Animate3DPipeline, MVDreamViewsThenAnimate3D
    from ..evaluation.evaluate import PlannedRun
    from ..pipeline import VividZooPipeline

    def vividzoo(alignment: Path | None) -> Callable[[], VividZooPipeline]:
        return lambda: VividZooPipeline.from_files(args.mvdream, args.motion, alignment, args.device, args.dtype)

    def animate3d(model: Path) -> Callable[[], MVDreamViewsThenAnimate3D]:
        return lambda: MVDreamViewsThenAnimate3D(
            VividZooPipeline.from_files(args.mvdream, None, None, args.device, args.dtype),
            Animate3DPipeline.from_files(
                args.mvdream, model, args.clip_vision, args.ip_adapter, args.device, args.dtype
            ),
        )

    planned = [PlannedRun(name, vividzoo(alignment), settings_from(args)) for name, alignment in args.alignments or []]
    planned += [
        PlannedRun(name, animate3d(model), animate3d_settings_from(args)) for name, model in args.animate3d_runs or []
    ]
    return planned


def _load_models(args: argparse.Namespace, device):
    scorer = detector = None
    if args.clip:
        from ..evaluation.clip_score import ClipScorer

        scorer = ClipScorer.from_folder(args.clip, device)
    if args.i3d:
        from ..evaluation.fvd import I3DFeatures

        detector = I3DFeatures.from_file(args.i3d, device)
    return scorer, detector

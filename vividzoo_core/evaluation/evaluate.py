"""Scoring runs: CLIP score and proxies per prompt, I3D features per view clip, FVD per run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..generation import Settings, VideoGenerator, generate_prompts
from .clip_score import ClipScorer
from .frechet import fit_gaussian, frechet_distance, singular_covariance_warning
from .fvd import I3DFeatures
from .report import PER_PROMPT_METRICS, RunScores, table, write_reports
from .runs import Run, read_run


@dataclass
class PlannedRun:
    """A run to generate: its name, how to make its pipeline, and its model's settings (the prompt set per video)."""

    name: str
    make_pipeline: Callable[[], VideoGenerator]
    settings: Settings


def generate_runs(planned: list[PlannedRun], prompts: list[str], out: Path,
                  log: Callable[[str], None] = print) -> list[Run]:
    """Generates every prompt with each planned run into ``out/runs/NAME``.

    Each pipeline is made only when its run starts, so one is in memory at a time.
    """
    runs = []
    for plan in planned:
        folder = Path(out) / "runs" / plan.name
        log(f"generating run {plan.name!r} (seed {plan.settings.seed})")
        generate_prompts(plan.make_pipeline(), prompts, plan.settings, folder, log=log)
        runs.append(read_run(plan.name, folder))
    return runs


def evaluate_runs(runs: list[Run], scorer: ClipScorer | None, detector: I3DFeatures | None,
                  reference: tuple[int, Iterator[torch.Tensor]] | None, out: Path,
                  log: Callable[[str], None] = print) -> list[RunScores]:
    """Scores every run, writes ``eval.*`` to ``out`` and prints the table."""
    from tqdm import tqdm

    notes = ["temporal and cross-view consistency are proxies (mean CLIP image cosine of consecutive frames / "
             "of the views of one frame), not metrics from the paper"] if scorer else []
    reference_gaussian = None
    if detector is not None and reference is not None:
        objects, clips = reference
        features = np.concatenate([detector.features(clip) for clip in tqdm(clips, total=objects,
                                                                             desc="reference clips (I3D)")])
        reference_gaussian = fit_gaussian(features)
    scores = []
    for run in runs:
        run_scores = RunScores(run.name, run.prompts, {metric: [] for metric in PER_PROMPT_METRICS} if scorer else {})
        features = []
        for result in tqdm(run.results, desc=f"run {run.name}", unit="prompt"):
            frames = result.load()
            if scorer is not None:
                video = scorer.score_video(frames, result.prompt)
                for metric in PER_PROMPT_METRICS:
                    run_scores.per_prompt[metric].append(getattr(video, metric))
            if detector is not None:
                features.append(detector.features(frames.transpose(0, 1)))  # one clip per view
        if reference_gaussian is not None:
            generated = fit_gaussian(np.concatenate(features))
            run_scores.fvd = frechet_distance(generated, reference_gaussian)
            run_scores.generated_clips, run_scores.reference_clips = generated.count, reference_gaussian.count
            warning = singular_covariance_warning(run.name, generated, reference_gaussian)
            if warning:
                notes.append(warning)
        scores.append(run_scores)
    written = write_reports(scores, out, notes)
    log(table(scores))
    for note in notes:
        log(note)
    log("wrote " + ", ".join(str(path) for path in written.values()))
    return scores

"""Scores of several runs as the paper's Table 1: terminal table, CSV, JSON and a chart (eval.png).

Per-prompt metrics (CLIP score and the proxies) get a bootstrap 95% interval over prompts (1000
resamples, percentile method, fixed seed); FVD is a set statistic, reported with its clip counts.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
PER_PROMPT_METRICS = {
    "clip_score": "CLIP score",
    "temporal_consistency": "temporal consistency (proxy)",
    "cross_view_consistency": "cross-view consistency (proxy)",
}


def bootstrap_interval(values: list[float], level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement)."""
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return math.nan, math.nan
    picks = np.random.default_rng(seed).integers(0, data.size, size=(resamples, data.size))
    means = data[picks].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


@dataclass
class RunScores:
    name: str
    prompts: list[str]
    per_prompt: dict[str, list[float]] = field(default_factory=dict)
    """Metric name (keys of PER_PROMPT_METRICS) -> one value per prompt."""
    fvd: float | None = None
    generated_clips: int = 0
    reference_clips: int = 0

    def summary(self) -> dict:
        row: dict = {"run": self.name, "prompts": len(self.prompts), "fvd": self.fvd,
                     "generated_clips": self.generated_clips, "reference_clips": self.reference_clips}
        for metric, values in self.per_prompt.items():
            finite = [v for v in values if math.isfinite(v)]
            row[metric] = float(np.mean(finite)) if finite else None
            row[f"{metric}_ci95"] = list(bootstrap_interval(values)) if finite else None
        return row


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def table(scores: list[RunScores]) -> str:
    """One row per run, columns as the paper's Table 1 (FVD, CLIP score) plus the proxies."""
    header = ["Method", "FVD (StyleGAN-V) ↓", "clips gen/ref", "CLIP score ↑ [95% CI]",
              "temporal cons. (proxy) ↑ [95% CI]", "cross-view cons. (proxy) ↑ [95% CI]"]
    rows = []
    for run in scores:
        summary = run.summary()
        cells = [run.name, _number(run.fvd, 2),
                 f"{run.generated_clips}/{run.reference_clips}" if run.fvd is not None else "-"]
        for metric, digits in (("clip_score", 2), ("temporal_consistency", 4), ("cross_view_consistency", 4)):
            interval = summary.get(f"{metric}_ci95") or [None, None]
            cells.append(f"{_number(summary.get(metric), digits)} [{_number(interval[0], digits)}, "
                         f"{_number(interval[1], digits)}]")
        rows.append(cells)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write_reports(scores: list[RunScores], out: Path, notes: list[str]) -> dict[str, Path]:
    """``eval.csv`` (one row per run), ``eval.json`` (with per-prompt values), ``eval.png``, ``eval.txt``."""
    out.mkdir(parents=True, exist_ok=True)
    summaries = [run.summary() for run in scores]
    columns = ["run", "prompts", "fvd", "generated_clips", "reference_clips"]
    for metric in PER_PROMPT_METRICS:
        columns += [metric, f"{metric}_ci95_low", f"{metric}_ci95_high"]
    with (out / "eval.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for summary in summaries:
            row = {k: v for k, v in summary.items() if k in columns}
            for metric in PER_PROMPT_METRICS:
                low, high = summary.get(f"{metric}_ci95") or (None, None)
                row[f"{metric}_ci95_low"], row[f"{metric}_ci95_high"] = low, high
            writer.writerow(row)
    details = [
        {
            **summary,
            "per_prompt": {
                "prompt": run.prompts,
                **{
                    metric: [v if math.isfinite(v) else None for v in values]
                    for metric, values in run.per_prompt.items()
                },
            },
        }
        for run, summary in zip(scores, summaries)
    ]  # NaN (one frame or one view) is not JSON: null
    (out / "eval.json").write_text(json.dumps({"runs": details, "notes": notes,
                                               "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "level": 0.95,
                                                             "seed": BOOTSTRAP_SEED}}, indent=1))
    (out / "eval.txt").write_text(table(scores) + "\n" + "".join(f"{note}\n" for note in notes))
    figure = summary_figure(summaries)
    from matplotlib import pyplot

    figure.savefig(out / "eval.png", dpi=100)
    pyplot.close(figure)
    return {name: out / name for name in ("eval.csv", "eval.json", "eval.txt", "eval.png")}


def summary_figure(summaries: list[dict]):
    """The figure of ``eval.png``: FVD as bars from 0 with the clip counts; each per-prompt metric as its mean
    with bootstrap 95% whiskers on an axis fitted to the data (0.9989 and 0.9988 must not look alike)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    panels = [("fvd", "FVD, StyleGAN-V (lower is better)")] if any(s["fvd"] is not None for s in summaries) else []
    panels += [(metric, label) for metric, label in PER_PROMPT_METRICS.items()]
    figure, axes = pyplot.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), squeeze=False)
    names = [s["run"] for s in summaries]
    for axis, (metric, label) in zip(axes[0], panels):
        values = [s.get(metric) if s.get(metric) is not None else math.nan for s in summaries]
        if metric == "fvd":
            bars = axis.bar(range(len(names)), values, color=[f"C{i}" for i in range(len(names))])
            counts = [f"{s['generated_clips']}/{s['reference_clips']} clips" for s in summaries]
            axis.bar_label(bars, counts, fontsize=7)
        else:
            intervals = [s.get(f"{metric}_ci95") or [v, v] for s, v in zip(summaries, values)]
            for index, (value, (low, high)) in enumerate(zip(values, intervals)):
                axis.errorbar([index], [value], yerr=[[value - low], [high - value]], fmt="o", color=f"C{index}",
                              capsize=4)
            axis.ticklabel_format(axis="y", useOffset=False)  # autoscaled to the dots and whiskers, not from 0
            axis.set_xlim(-0.5, len(names) - 0.5)
        axis.set_xticks(range(len(names)), names, rotation=20, ha="right")
        axis.set_title(label, fontsize=9)
        axis.grid(True, axis="y", alpha=0.3)
    figure.suptitle("Vivid-ZOO evaluation (dots: mean over prompts, whiskers: bootstrap 95% CI)", fontsize=9)
    figure.tight_layout()
    return figure


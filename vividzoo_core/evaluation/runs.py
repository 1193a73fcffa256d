"""Reading generated runs: the folders ``vividzoo generate --prompts`` writes.

A run folder holds one result folder per prompt (or is itself one result, from ``--prompt``). A result
has ``frames/fFFF_vVV.png`` (every frame of every view) and its prompt in ``info.json``, or, for
results written before ``info.json`` existed, in the JSON ``comment`` metadata of ``grid.mp4``.
Everything is checked before any model runs; frames are decoded one result at a time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ..errors import VividZooError
from ..video import INFO_FILE, frame_name, read_info, read_saved_frames, saved_frame_grid


@dataclass
class GeneratedResult:
    folder: Path
    prompt: str
    frames: int
    views: int
    size: int
    """Height of the frames in pixels (generated frames are square)."""

    def load(self) -> torch.Tensor:
        """``(frames, views, H, W, 3)`` float in [0, 1], like ``MultiViewVideo.frames``."""
        return read_saved_frames(self.folder, self.frames, self.views)


@dataclass
class Run:
    name: str
    folder: Path
    results: list[GeneratedResult]

    @property
    def prompts(self) -> list[str]:
        return [result.prompt for result in self.results]


def _prompt_of(folder: Path) -> str:
    info = read_info(folder) if (folder / INFO_FILE).is_file() else _mp4_comment(folder / "grid.mp4")
    prompt = info.get("prompt") if isinstance(info, dict) else None
    if not isinstance(prompt, str) or not prompt.strip():
        raise VividZooError(f"{folder}: no prompt found (in {INFO_FILE} or grid.mp4's comment metadata); "
                            "evaluate folders written by `vividzoo generate`")
    return prompt


def _mp4_comment(path: Path) -> dict:
    import av

    if not path.is_file():
        return {}
    try:
        with av.open(str(path)) as container:
            return json.loads(container.metadata.get("comment", "{}"))
    except (av.error.FFmpegError, ValueError):
        return {}


def read_result(folder: Path) -> GeneratedResult:
    """The prompt and frame grid of one result folder; every frame of every view must be there."""
    frames, views = saved_frame_grid(folder)
    with Image.open(folder / frame_name(0, 0)) as first:
        size = first.height
    return GeneratedResult(folder, _prompt_of(folder), frames, views, size)


def read_run(name: str, folder: Path) -> Run:
    """Every result in ``folder`` (sorted by folder name), all with the same frame and view counts."""
    if not folder.is_dir():
        raise VividZooError(f"run {name!r}: {folder} is not a folder")
    if (folder / "frames").is_dir():
        results = [read_result(folder)]
    else:
        subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and (p / "frames").is_dir())
        if not subfolders:
            raise VividZooError(f"run {name!r}: {folder} holds no generated results (folders with frames/)")
        results = [read_result(p) for p in subfolders]
    shapes = {(r.frames, r.views, r.size) for r in results}
    if len(shapes) != 1:
        raise VividZooError(f"run {name!r}: results differ in frames x views x size {sorted(shapes)}; "
                            "generate every result of a run with the same --frames, --views and --size")
    return Run(name, folder, results)


def check_comparable(runs: list[Run]) -> None:
    """Runs in one table must share their prompts, frame count and view count."""
    first = runs[0]
    for run in runs[1:]:
        if sorted(run.prompts) != sorted(first.prompts):
            only = sorted(set(run.prompts) ^ set(first.prompts)) or ["(same prompts, different repeats)"]
            raise VividZooError(f"runs {first.name!r} and {run.name!r} have different prompts, e.g. {only[0]!r}; "
                                "compare runs generated from the same prompt list")
        shape, other = first.results[0], run.results[0]
        if (shape.frames, shape.views, shape.size) != (other.frames, other.views, other.size):
            raise VividZooError(
                f"runs {first.name!r} and {run.name!r} differ in frames x views x size "
                f"({shape.frames}x{shape.views}x{shape.size} vs {other.frames}x{other.views}x{other.size})"
            )

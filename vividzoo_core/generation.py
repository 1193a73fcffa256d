"""Generating a list of prompts into folders: the library behind ``vividzoo generate`` and ``vividzoo eval``.

Every prompt gets the same settings and seed; each video is written by :func:`save_video_or_rescue`
(one set of file names), so a failing disk never loses a finished video.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Union

from .cameras import CameraRig
from .settings import GenerationSettings
from .video import MultiViewVideo, save_video_or_rescue

if TYPE_CHECKING:
    from .animate3d_pipeline import Animate3DSettings

Settings = Union[GenerationSettings, "Animate3DSettings"]
"""The settings of one video of either model family."""


class VideoGenerator(Protocol):
    """What :func:`generate_prompts` needs of a pipeline: :class:`~vividzoo_core.pipeline.VividZooPipeline`, or an
    Animate3D one bound to its condition views (:mod:`vividzoo_core.animate3d_pipeline`)."""

    def generate(self, settings: Settings, cameras: CameraRig | None = None,
                 on_step: Callable[[int, int], None] = ...) -> MultiViewVideo: ...


def prompt_folder(out: Path, index: int, prompt: str, count: int) -> Path:
    """Where the video of prompt ``index`` of ``count`` goes: ``out`` itself for one, ``out/NNN_slug`` for several."""
    if count == 1:
        return out
    slug = re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")[:48] or "prompt"
    return out / f"{index:03d}_{slug}"


def generate_prompts(pipeline: VideoGenerator, prompts: list[str], settings: Settings, out: str | Path,
                     cameras: CameraRig | None = None, log: Callable[[str], None] = print,
                     progress: bool = True) -> list[Path]:
    """One video per prompt with ``settings`` (its ``prompt`` replaced), written under ``out``; their folders.

    ``cameras`` default to the orbit the settings describe. ``progress`` shows a step bar per prompt.
    """
    from tqdm import tqdm

    out = Path(out)
    written = []
    for index, prompt in enumerate(prompts):
        video_settings = dataclasses.replace(settings, prompt=prompt)
        folder = prompt_folder(out, index, prompt, len(prompts))
        description = f"[{index + 1}/{len(prompts)}] {prompt[:40]}"
        with tqdm(total=settings.steps, desc=description, unit="step", disable=not progress) as bar:
            def show(step: int, total: int, bar=bar) -> None:  # total: all steps of the stage running now
                bar.total, bar.n = total, step
                bar.refresh()

            video = pipeline.generate(video_settings, cameras, on_step=show)
        save_video_or_rescue(video, folder)
        log(f"wrote {folder}/ (grid.mp4, view_XX.mp4, grid.webp, frames/, cameras.json, transforms.json)")
        written.append(folder)
    return written

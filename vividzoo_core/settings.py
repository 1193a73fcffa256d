"""Generation settings: one table of every setting's default, limits and meaning.

The command line (``vividzoo generate``, ``vividzoo eval``), the ComfyUI nodes and
:class:`GenerationSettings` all read this table, so a limit or a default is written once. A setting's
``name`` is the :class:`GenerationSettings` field and the node input; the command-line option is
``--name-with-dashes`` (``--size`` sets width and height together).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields

from .cameras import CameraRig, moving_orbit, orbit
from .checkpoints.motion import POSITION_ENCODING_LENGTHS
from .checkpoints.reconstruction import BIG
from .errors import VividZooError
from .lgm_cameras import INPUT_SIZE as LGM_INPUT_SIZE
from .schedules import BETA_SCHEDULES, PAPER_BETA_SCHEDULE

MOST_FRAMES_AT_ONCE = max(POSITION_ENCODING_LENGTHS.values())
"""The longest context window any supported motion module takes (its position-encoding length)."""


@dataclass(frozen=True)
class Setting:
    """One setting: its default, its range (``None``: unbounded), and what it means."""

    name: str
    kind: type
    """int, float or str."""
    default: object
    description: str
    low: float | None = None
    high: float | None = None
    multiple: int = 1
    """Whole-number settings only: the value must be a multiple of this."""
    step: float | None = None
    """The node widget's step (ComfyUI); the command line takes any value in range."""
    choices: tuple[str, ...] | None = None

    @property
    def option(self) -> str:
        """The command-line option."""
        return "--" + self.name.replace("_", "-")

    def range_text(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        text = f"from {self._number(self.low)} to {self._number(self.high)}"
        return text + (f", a multiple of {self.multiple}" if self.multiple > 1 else "")

    def _number(self, value: float) -> str:
        return str(int(value)) if self.kind is int and value == int(value) else f"{value:g}"

    def problem(self, value: object) -> str | None:
        """Why ``value`` does not fit, naming the setting, the value and what would fit; None if it fits."""
        if self.choices is not None:
            return None if value in self.choices else f"{self.name} {value!r} is not {self.range_text()}"
        if self.kind is str or (value is None and self.default is None):
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return f"{self.name} must be a finite number, got {value!r}; use {self.range_text()}"
        if self.kind is int and value != int(value):
            return f"{self.name} must be a whole number, got {value!r}; use {self.range_text()}"
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            return f"{self.name} is {self._number(value)}, out of range; use {self.range_text()}"
        if self.kind is int and int(value) % self.multiple:
            below = int(value) // self.multiple * self.multiple
            return (f"{self.name} {value} is not a multiple of {self.multiple}; try {max(below, self.multiple)} "
                    f"or {below + self.multiple}")
        return None

    def check(self, value: object) -> None:
        problem = self.problem(value)
        if problem:
            raise VividZooError(problem)


VIEWS = Setting("views", int, 4, "camera views around the object (MVDream, the paper: 4)", 1, 16)
FRAMES = Setting("frames", int, 16, "frames per view (the paper: 16); videos longer than the motion module's limit "
                               "(32 for v2) are denoised in sliding context windows", 1, 1024)
WIDTH = Setting(
    "width", int, 256, "image width in pixels, a multiple of 8 (the paper: 256)", 8, 2048, multiple=8, step=8
)
HEIGHT = Setting(
    "height", int, 256, "image height in pixels, a multiple of 8 (the paper: 256)", 8, 2048, multiple=8, step=8
)
STEPS = Setting("steps", int, 50, "denoising steps (the paper: 50 DDIM)", 1, 1000)
CFG = Setting("cfg", float, 7.5, "classifier-free guidance scale (the paper: 7.5)", 0.0, 100.0, step=0.1)
ELEVATION = Setting("elevation", float, 15.0, "camera height in degrees above the object's equator (MVDream: 0 to 30)",
                    -89.0, 89.0, step=0.5)
AZIMUTH_START = Setting(
    "azimuth_start",
    float,
    0.0,
    "azimuth of view 0 in degrees (0 = front; MVDream's scripts use 90)",
    -360.0,
    360.0,
    step=1.0,
)
TURN = Setting(
    "turn",
    float,
    0.0,
    "degrees the camera ring turns over the clip while the object moves (0: static cameras; "
    "360: a turntable that loops)",
    -1440.0,
    1440.0,
    step=5.0,
)
SEED = Setting("seed", int, None, "random seed of the noise (unset: a random one, printed and saved in info.json)",
               0, 2**64 - 1)
BETA_SCHEDULE = Setting("beta_schedule", str, PAPER_BETA_SCHEDULE,
                        "noise schedule, in diffusers' names: linear = the Vivid-ZOO paper's and AnimateDiff's "
                        "(ComfyUI calls it sqrt_linear); scaled_linear = MVDream's and SD 1.5's own (ComfyUI's linear)",
                        choices=BETA_SCHEDULES)
CONTEXT_FRAMES = Setting("context_frames", int, None,
                         "frames per sliding context window (unset or 0: automatic, all frames when the motion module "
                         "takes them, else windows of its limit)", 0, MOST_FRAMES_AT_ONCE)
CONTEXT_OVERLAP = Setting("context_overlap", int, 4, "frames shared by neighbouring context windows (blended smoothly)",
                          0, MOST_FRAMES_AT_ONCE - 1)
FPS = Setting("fps", float, 8.0, "frames per second of the written videos", 1.0, 120.0, step=1.0)
NEGATIVE = Setting("negative", str, "", "negative prompt (the paper: empty, with the same cameras)")
# Animate3D's own: how strongly the condition views steer the video, and FreeInit.
IP_SCALE = Setting("ip_scale", float, 1.0, "weight of the condition views' CLIP image tokens in cross-attention "
                                          "(IP-Adapter scale; Animate3D: 1)", 0.0, 2.0, step=0.05)
FREE_INIT_ITERATIONS = Setting("free_init_iterations", int, 3, "FreeInit passes: the whole sampling repeated from "
                                                               "noise whose low frequencies come from the last pass "
                                                               "(Animate3D: 3; 1 turns FreeInit off)", 1, 10)

# Reconstruction (LGM / L4GM): not a generation setting, so not in SETTINGS; the command line and the node read it here.
RECONSTRUCTION_SIZE = Setting(
    "input_size", int, LGM_INPUT_SIZE, "the size the views are resized to for LGM / L4GM (256, what they were trained "
    "at; smaller only for tests with tiny weights)", 2**BIG.downsamples, 4 * LGM_INPUT_SIZE,
    multiple=2**BIG.downsamples, step=2**BIG.downsamples)

SETTINGS: dict[str, Setting] = {s.name: s for s in (
    VIEWS, FRAMES, WIDTH, HEIGHT, STEPS, CFG, ELEVATION, AZIMUTH_START, TURN, SEED, BETA_SCHEDULE, CONTEXT_FRAMES,
    CONTEXT_OVERLAP, FPS, NEGATIVE, IP_SCALE, FREE_INIT_ITERATIONS,
)}


@dataclass
class GenerationSettings:
    """Everything one generation needs besides the weights and cameras; defaults and limits from the table above."""

    prompt: str
    negative: str = NEGATIVE.default
    views: int = VIEWS.default
    frames: int = FRAMES.default
    width: int = WIDTH.default
    height: int = HEIGHT.default
    steps: int = STEPS.default
    cfg: float = CFG.default
    elevation: float = ELEVATION.default
    azimuth_start: float = AZIMUTH_START.default
    turn: float = TURN.default
    seed: int | None = SEED.default
    """None draws a random seed when the settings are made, so the saved settings can make the video again."""
    beta_schedule: str = BETA_SCHEDULE.default
    context_frames: int | None = CONTEXT_FRAMES.default
    """Frames per context window; None or 0: all frames if the motion module takes them, else windows of its limit."""
    context_overlap: int = CONTEXT_OVERLAP.default
    fps: float = FPS.default

    def __post_init__(self) -> None:
        if self.seed is None:
            self.seed = random_seed()

    def check(self) -> None:
        """Refuses a value out of its table range, naming the setting, the value and what fits, and an overlap
        that is not shorter than the windows chosen."""
        for field in fields(self):
            if field.name in SETTINGS:
                SETTINGS[field.name].check(getattr(self, field.name))
        check_context_overlap(self.frames, self.context_frames, self.context_overlap)

    def cameras(self) -> CameraRig:
        """The orbit these settings describe: a static ring, or one turning by ``turn`` degrees over the clip."""
        if self.turn:
            return moving_orbit(self.views, self.frames, self.elevation, self.azimuth_start, turn=self.turn)
        return orbit(self.views, self.elevation, self.azimuth_start)

    def window_frames(self, max_frames: int) -> int:
        """Frames denoised at once by a motion module that takes at most ``max_frames``."""
        return self.context_frames or min(self.frames, max_frames)


def check_context_overlap(frames: int, context_frames: int | None, context_overlap: int) -> None:
    """Refuses an overlap as long as the windows chosen for a longer video: neighbouring windows would not move on.
    One window (``context_frames`` of at least ``frames``) has no neighbour; automatic windows (``context_frames``
    unset or 0) keep the table's overlap below their length instead."""
    if context_frames and context_frames < frames and context_overlap >= context_frames:
        raise VividZooError(f"context_overlap {context_overlap} is not shorter than the window of context_frames "
                            f"{context_frames} ({frames} frames are denoised in windows); use an overlap from 0 to "
                            f"{context_frames - 1}")


def random_seed() -> int:
    """A seed for runs that name none; small enough to read back and type."""
    return random.randrange(2**32)

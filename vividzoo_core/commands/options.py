"""Checked command-line values: every option is validated while the command line is parsed.

Each function is an argparse ``type=``: it returns the converted value or raises
``argparse.ArgumentTypeError`` with what was wrong, the value and what would fit. argparse then
prints the usage line and one ``error:`` line and exits with status 2, before any weights load
or work starts.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..devices import DTYPE_CHOICES
from ..settings import SEED, Setting

if TYPE_CHECKING:
    from ..cameras import CameraRig


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole number' if kind is int else 'number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


class int_range:  # noqa: N801 (used like a type: ``type=int_range(1, 100)``)
    """A whole number in ``[low, high]`` (either bound may be open), optionally a multiple of ``multiple``."""

    __name__ = "whole number"

    def __init__(self, low: int | None = None, high: int | None = None, multiple: int = 1) -> None:
        self.low, self.high, self.multiple = low, high, multiple

    def __call__(self, text: str) -> int:
        value = _number(text, int)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise argparse.ArgumentTypeError(f"{value} is out of range; use {_bounds(self.low, self.high)}")
        if value % self.multiple:
            below = value // self.multiple * self.multiple
            raise argparse.ArgumentTypeError(
                f"{value} is not a multiple of {self.multiple}; try {below} or {below + self.multiple}"
            )
        return value


class float_range:  # noqa: N801
    """A finite number in ``[low, high]``; ``low_open`` / ``high_open`` exclude the bound itself."""

    __name__ = "number"

    def __init__(self, low: float | None = None, high: float | None = None, *, low_open: bool = False,
                 high_open: bool = False) -> None:
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def __call__(self, text: str) -> float:
        value = _number(text, float)
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if below or above:
            bounds = _bounds(self.low, self.high, self.low_open, self.high_open)
            raise argparse.ArgumentTypeError(f"{value:g} is out of range; use {bounds}")
        return value


positive_int = int_range(1)
non_negative_int = int_range(0)
positive_float = float_range(0.0, low_open=True)
any_float = float_range()
seed = int_range(SEED.low, SEED.high)


def orbit_views(text: str) -> int:
    """A number of views on an orbit among which training finds its views evenly spaced (4: 90 degrees apart).

    The rule is ``dataset check``'s, applied to the orbit a render would have: a count it refuses
    would give a dataset that check calls unusable for training.
    """
    from ..cameras import orbit
    from ..data.reader import evenly_spaced_view_sets, view_azimuths
    from ..training.config import TrainingConfig

    views, wanted = positive_int(text), TrainingConfig.views

    def usable(count: int) -> bool:
        return bool(evenly_spaced_view_sets(view_azimuths(orbit(count)), wanted))

    if usable(views):
        return views
    fits = [count for count in range(views - 1, 0, -1) if usable(count)][:1]
    fits.append(next(count for count in itertools.count(views + 1) if usable(count)))
    raise argparse.ArgumentTypeError(
        f"{views} views on an orbit hold no {wanted} views {360 / wanted:g} degrees apart, so `dataset check` would "
        f"call every object unusable for training; use {' or '.join(map(str, fits))} (any multiple of {wanted} works)")


def existing_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{path} does not exist; give the path of an existing file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{path} is a folder, not a file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{path} is not readable (check its permissions)")
    return path


def existing_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise argparse.ArgumentTypeError(f"{path} {what}; give the path of an existing folder")
    return path


def output_dir(text: str) -> Path:
    """A folder that exists and is writable, or can be created (nothing is created while parsing)."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file; give a folder for the outputs")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write to {path}: {parent} is not a writable folder")
    return path


def camera_file(text: str) -> CameraRig:
    """A camera JSON or transforms.json, read and checked while parsing (its views checked later)."""
    from ..cameras import load_cameras
    from ..errors import VividZooError

    try:
        return load_cameras(existing_file(text))
    except VividZooError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def device(text: str) -> str:
    """auto, cpu, mps, cuda or cuda:N, present on this machine."""
    from ..devices import resolve_device
    from ..errors import VividZooError

    try:
        resolve_device(text)
    except VividZooError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def setting_type(setting: Setting) -> Callable[[str], object]:
    """The checked argparse type of a setting of :mod:`vividzoo_core.settings`: its kind and its range."""
    if setting.kind is int:
        return int_range(setting.low, setting.high, setting.multiple)
    if setting.kind is float:
        return float_range(setting.low, setting.high)
    return str


def add_setting(parser: argparse.ArgumentParser | argparse._ArgumentGroup, setting: Setting,
                option: str | None = None, help: str | None = None, default: object = None) -> None:
    """An option for ``setting``: type, range, choices and default from the settings table.

    ``option`` renames it (``--size`` for width and height); ``help`` replaces its description; ``default``
    replaces the table's where a model has its own (Animate3D samples 25 steps).
    """
    kwargs: dict = {"choices": setting.choices} if setting.choices else {"type": setting_type(setting)}
    value = setting.default if default is None else default
    shown = "" if value in (None, "") else f" (default {value})"
    parser.add_argument(option or setting.option, default=value, help=(help or setting.description) + shown, **kwargs)


def resume_from(text: str) -> str | Path:
    """auto, none, or a checkpoint folder that exists."""
    return text if text in ("auto", "none") else existing_dir(text)


def _bounds(low, high, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return (
            f"{'more than' if low_open else 'at least'} {low:g} and {'less than' if high_open else 'at most'} {high:g}"
        )
    if low is not None:
        return f"{'more than' if low_open else 'at least'} {low:g}"
    return f"{'less than' if high_open else 'at most'} {high:g}"


def asset_file(text: str) -> Path:
    """A 3D asset file Blender imports here (.glb .gltf .fbx .blend), checked without Blender."""
    from ..data.render.condition_views import check_asset
    from ..errors import VividZooError

    try:
        return check_asset(Path(text).expanduser())
    except VividZooError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def existing_path(text: str) -> Path:
    """A file or a folder that exists."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{path} does not exist; give an existing file or folder")
    return path


def shard(text: str) -> tuple[int, int]:
    """``I/N``: part ``I`` (0 to N-1, as SLURM_ARRAY_TASK_ID counts) of ``N`` parts."""
    index, _, count = text.partition("/")
    try:
        index_value, count_value = int(index), int(count)
    except ValueError:
        index_value = count_value = 0
    if not 0 <= index_value < count_value:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shard; use I/N with 0 <= I < N, e.g. 0/8")
    return index_value, count_value


class float_span:  # noqa: N801
    """``A`` (a fixed value) or ``A:B`` (a range, A <= B), both within ``[low, high]``."""

    __name__ = "value or range"

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high
        self.single = float_range(low, high)

    def __call__(self, text: str) -> tuple[float, float]:
        first, colon, second = text.partition(":")
        start = self.single(first)
        end = self.single(second) if colon else start
        if end < start:
            raise argparse.ArgumentTypeError(f"{text!r}: the range must go from low to high")
        return start, end


def output_file(text: str) -> Path:
    """A file to write: not a folder, in a folder that exists and is writable or can be created."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file name to write")
    output_dir(str(path.parent))
    return path


class named_value:  # noqa: N801
    """``NAME=VALUE`` with a plain name (it becomes a table row and a folder name) and a checked value."""

    NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")

    def __init__(self, value_type: Callable[[str], object], what: str) -> None:
        self.value_type, self.what = value_type, what
        self.__name__ = f"NAME={what}"

    def __call__(self, text: str) -> tuple[str, object]:
        name, sep, value = text.partition("=")
        if not sep or not self.NAME.fullmatch(name):
            raise argparse.ArgumentTypeError(f"{text!r} is not NAME={self.what} (NAME: letters, digits, _ . + -)")
        return name, self.value_type(value)


def add_device_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--device`` and ``--dtype``, shared by every command that runs a network."""
    parser.add_argument("--device", type=device, default="auto", help="auto (CUDA when present), cuda, cuda:N or cpu")
    parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES,
                        help="compute precision (auto: fp16 on CUDA, fp32 on CPU)")


def check_devices(args: argparse.Namespace) -> None:
    """Refuses a ``--dtype`` the ``--device`` cannot run, before any weights load."""
    from ..devices import resolve_device, resolve_dtype

    resolve_dtype(args.dtype, resolve_device(args.device))

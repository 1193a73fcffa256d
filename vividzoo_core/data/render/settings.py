"""What a render looks like: the settings of a batch and the per-object draws made from them.

Framing: the object's bounding box over every rendered frame is centred at the origin and scaled so
that its circumscribed sphere fills ``FRAME_FILL`` of the camera's view cone (radius ``radius *
sin(fov / 2)``). Every camera direction then sees the whole moving object with a margin, whatever
``radius`` and ``fov`` are, and the object's size in the image does not depend on them. With the
defaults (radius 2.4, fov 40) the sphere's radius is 0.74 and the visible half-height at the centre
is 0.87: a camera distance of 1.18 / tan(fov / 2) in units of the sphere, just looser than
MVDream-threestudio's (0.8 to 1.0) / tan(fov / 2) for its unit scene sphere, so renders are framed
like MVDream's views without a moving object ever being cropped.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ...cameras import DEFAULT_FOV_DEGREES, DEFAULT_RADIUS

CONDITION_VIEWS_TASK = "condition_views"
"""A worker job that renders an asset's 4 condition views (:mod:`.condition_views`) instead of its animations."""

FRAME_FILL = 0.9
ENGINES = ("cycles", "eevee")
DEVICES = ("cpu", "gpu")


@dataclass(frozen=True)
class RenderSettings:
    views: int = 24
    elevation: tuple[float, float] = (15.0, 30.0)
    """Degrees; drawn uniformly per object (equal bounds: fixed)."""
    fps: int = 24
    max_frames: int = 48
    resolution: int = 512
    engine: str = "cycles"
    device: str = "cpu"
    samples: int = 64
    denoise: bool = True
    radius: float = DEFAULT_RADIUS
    fov_degrees: float = DEFAULT_FOV_DEGREES
    seed: int = 0
    threads: int = 0
    """Render threads per worker; 0 lets Blender use every core."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RenderSettings:
        return cls(**{**data, "elevation": tuple(data["elevation"])})

    def framing_sphere_radius(self) -> float:
        """Radius of the sphere the all-frame bounding box is scaled into (see the module docstring)."""
        return FRAME_FILL * self.radius * math.sin(math.radians(self.fov_degrees) / 2)


def object_draws(settings: RenderSettings, object_id: str) -> tuple[float, float]:
    """``(elevation, azimuth_start)`` in degrees for one object: fixed by the seed and the object's id.

    The same object gets the same cameras whatever shard, worker or order renders it.
    """
    rng = np.random.default_rng([settings.seed, zlib.crc32(object_id.encode())])
    low, high = settings.elevation
    return float(rng.uniform(low, high)) if high > low else float(low), float(rng.uniform(0.0, 360.0))


def frame_times(duration_seconds: float, settings: RenderSettings) -> list[float]:
    """Seconds from the animation's start of each rendered frame: ``fps`` steps, at most ``max_frames``.

    Longer animations are cut after ``max_frames`` frames (their beginning is kept).
    """
    count = min(settings.max_frames, int(math.floor(duration_seconds * settings.fps + 1e-6)) + 1)
    return [i / settings.fps for i in range(count)]

"""The 4 condition views of a static 3D asset, rendered with Blender the way Animate3D makes its own.

Animate3D's MV-VDM is conditioned on 4 views of a static object. Its own recipe (README "Mesh", step 2:
``custom/threestudio-animate3d/configs/visualize_four_view_static.yaml``) renders them at elevation 15
degrees, azimuths 0/90/180/270 in threestudio's z-up convention, camera distance 3.0, vertical field of
view 40 degrees, 512 x 512 pixels, over grey 0.502 (RGBA files whose colour already holds the grey,
which ``inference.py`` reads as RGB). These are the cameras its pipeline's ``get_camera(4)`` gives the
model. ``docs/animate3d.md`` ("Condition views of a static asset") lists every value with the file and line it
comes from.

In our (MVDream) convention these cameras are :func:`condition_cameras`: threestudio's azimuth ``b`` is our
``b + THREESTUDIO_AZIMUTH_OFFSET`` (see :mod:`vividzoo_core.cameras`). Threestudio's azimuth 0 is the front of
an object, ours is the front of an asset as Blender imports it (glTF's +z, Blender's -y), so the asset is
turned by the same offset about the vertical before rendering: view 0 then shows its front, view 1 its left
side (the camera moves counter-clockwise seen from above), view 2 its back, view 3 its right side. Animate3D's
README turns its example mesh the same way (``rot_x_degree=90`` then ``rot_z_degree=90``: y-up to z-up, as
Blender's importers do, then the front to threestudio's azimuth 0).

Animate3D does not normalise the object (it expects threestudio's scene, the unit sphere, and its README
scales the example by hand); here the bounding box is centred at the origin and scaled into that unit
sphere, which from 3.0 away fills 97.5% of the 40 degree view cone: nothing is cropped.

Blender runs in a worker process (:mod:`.worker`), like ``dataset render``: a crash or a hang costs only
this call, and a file that cannot be imported or holds no mesh is refused right after the import, before
anything renders.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...animate3d_pipeline import ELEVATION, VIEWS, condition_cameras
from ...cameras import THREESTUDIO_AZIMUTH_OFFSET as AZIMUTH_OFFSET
from ...cameras import CameraRig
from ...errors import VividZooError
from .batch import ASSET_SUFFIXES, require_bpy, run_worker
from .settings import CONDITION_VIEWS_TASK, DEVICES, ENGINES, RenderSettings

CAMERA_DISTANCE = 3.0
"""``eval_camera_distance`` of the static render, in units of the scene sphere."""
FOV_DEGREES = 40.0
"""Vertical (and, square, horizontal) field of view: ``eval_fovy_deg``."""
RESOLUTION = 512
"""threestudio's ``eval_width`` / ``eval_height`` (the static config leaves the default); the model resizes."""
BACKGROUND = (128, 128, 128)
"""The grey behind the object: threestudio-3dgs inverts ``back_ground_color`` 0.498 outside training (0.502)."""
SCENE_RADIUS = 1.0
"""The sphere the asset's bounding box is scaled into: threestudio's unit scene."""


@dataclass(frozen=True)
class ConditionViews:
    """The 4 condition views of an asset, in Animate3D's view order (front, left, back, right)."""

    images: list[Image.Image]
    """RGB, square, the object over :data:`BACKGROUND`: what Animate3D's ``inference.py`` reads."""
    masks: list[Image.Image]
    """Mode ``L``, the object's coverage (255 where it covers the pixel): the alpha of Animate3D's renders."""
    cameras: CameraRig
    """:func:`condition_cameras`, at unit distance; the renders were made at ``distance``."""
    asset_to_render: np.ndarray
    """4x4: a point of the asset (in Blender's z-up world, as imported) to where it was rendered."""
    distance: float
    fov_degrees: float
    animation: str | None
    """The animation whose first frame was rendered, if the asset has any."""
    frame: float
    """The asset's frame that was rendered."""
    note: str | None
    """Set when the asset is animated: which frame stands for it."""


def check_asset(path: str | Path) -> Path:
    """``path`` if it is a file of a type Blender imports here; a one-line error otherwise (no Blender needed)."""
    path = Path(path)
    kinds = f"{', '.join(ASSET_SUFFIXES[:-1])} or {ASSET_SUFFIXES[-1]}"
    if path.suffix.lower() not in ASSET_SUFFIXES:
        raise VividZooError(f"{path}: not a 3D asset file ({path.suffix or 'no extension'}); give a {kinds} file")
    if not path.is_file():
        raise VividZooError(f"{path}: {'is a folder' if path.is_dir() else 'no such file'}; give a {kinds} file")
    return path


def render_condition_views(asset: str | Path, resolution: int = RESOLUTION, samples: int = 64, engine: str = "cycles",
                           device: str = "cpu", denoise: bool = True, timeout: float = 600.0) -> ConditionViews:
    """Renders the 4 condition views of ``asset`` (.glb, .gltf, .fbx or .blend) with Animate3D's cameras.

    An animated asset is rendered at the first frame of its first animation (``note`` says so): Animate3D
    conditions on a clip's first frame. A file that is missing, cannot be imported or holds no mesh, a
    Blender crash and a timeout are each a one-line :class:`VividZooError` naming the file.
    """
    asset = check_asset(asset)
    if engine not in ENGINES or device not in DEVICES:
        raise VividZooError(
            f"engine {engine!r} / device {device!r}: use an engine of {ENGINES} and a device of {DEVICES}"
        )
    if resolution < 1 or samples < 1:
        raise VividZooError(f"resolution {resolution} and samples {samples} must both be at least 1")
    require_bpy("rendering an asset's condition views")
    settings = RenderSettings(views=VIEWS, elevation=(ELEVATION, ELEVATION), resolution=resolution, engine=engine,
                              device=device, samples=samples, denoise=denoise, radius=CAMERA_DISTANCE,
                              fov_degrees=FOV_DEGREES)
    work = Path(tempfile.mkdtemp(prefix="vividzoo-condition-views-"))
    log = work / "blender.log"
    job = {
        "task": CONDITION_VIEWS_TASK,
        "asset": str(asset.resolve()),
        "out": str(work),
        "settings": settings.to_json(),
    }
    result = run_worker(job, work, "views", log, timeout)
    try:
        if result["status"] != "rendered":
            raise VividZooError(f"{asset}: {result['reason']}")
        views = [_over_background(Image.open(path)) for path in result["images"]]
    finally:
        if str(log) not in result.get("reason", ""):  # a crash or timeout names the log: keep it
            shutil.rmtree(work, ignore_errors=True)
    animation, frame = result["animation"], result["frame"]
    note = None
    if animation is not None:
        note = (f"{asset.name} is animated ({', '.join(result['animations'])}); rendered the first frame (frame "
                f"{frame:g}) of {animation!r}, as Animate3D conditions on the first frame of a clip")
    return ConditionViews(
        images=[image for image, _ in views],
        masks=[mask for _, mask in views],
        cameras=condition_cameras(),
        asset_to_render=asset_to_render(np.array(result["centre"]), result["scale"], AZIMUTH_OFFSET),
        distance=CAMERA_DISTANCE,
        fov_degrees=FOV_DEGREES,
        animation=animation,
        frame=frame,
        note=note,
    )


def asset_to_render(centre: np.ndarray, scale: float, turn_degrees: float) -> np.ndarray:
    """The 4x4 of :func:`.scene.normalise`: ``p -> R_z(turn) scale (p - centre)``."""
    angle = np.radians(turn_degrees)
    matrix = np.eye(4)
    matrix[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    matrix[:3, :3] *= scale
    matrix[:3, 3] = -matrix[:3, :3] @ centre
    return matrix


def _over_background(render: Image.Image) -> tuple[Image.Image, Image.Image]:
    """A Blender RGBA render (straight alpha) over :data:`BACKGROUND`, and its alpha."""
    rgba = render.convert("RGBA")
    grey = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
    return Image.alpha_composite(grey, rgba).convert("RGB"), rgba.getchannel("A")


def render_in_blender(asset: Path, folder: Path, settings: RenderSettings) -> dict[str, Any]:
    """Inside a worker: imports ``asset``, frames it in Animate3D's scene and renders the views into ``folder``."""
    from . import scene

    scene.load_asset(asset, settings.fps)  # refuses a file with no mesh right after the import
    animations = scene.find_animations()
    animation = next(iter(animations), None)
    frame = scene.play(animations[animation])[0] if animation is not None else scene.current_frame()
    scene.remove_lights_and_cameras()
    low, high, _ = scene.bounding_box([frame])
    centre, scale = scene.normalise(low, high, SCENE_RADIUS, turn_degrees=AZIMUTH_OFFSET)
    cameras = scene.add_cameras(condition_cameras().matrices[0], settings.radius, settings.fov_degrees)
    scene.configure_render(settings)
    paths = [folder / f"{view}.png" for view in range(VIEWS)]
    scene.render_views(cameras, frame, paths)
    return {"status": "rendered", "images": [str(path) for path in paths], "animations": list(animations),
            "animation": animation, "frame": frame, "centre": centre.tolist(), "scale": scale}

"""The Blender side of ``dataset render``: import an asset, play one animation, frame it, light it, render.

Runs only inside a worker process (it imports ``bpy``). An animation is one action together with the
objects (or shape keys) it drives, found on each owner's active action and its NLA strips; playing it
mutes everything else. The object is framed by a parent empty that maps a world point ``p`` to
``scale * (p - centre)``, so the asset's own hierarchy, rig and modifiers stay untouched. Lighting
(:data:`LIGHTING`) is the same from every azimuth: a uniform white sky and a soft sun straight overhead
that gives shape cues (tops brighter than sides); the asset's own lights and cameras are removed and
the background is transparent.
"""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from .settings import RenderSettings

GEOMETRY_TYPES = {"MESH", "CURVE", "SURFACE", "META", "FONT"}
GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")
SKY_STRENGTH = 0.6
SUN_STRENGTH = 0.4 * math.pi  # a white surface facing the sun: 0.6 sky + 0.4 sun = 1, i.e. white
SUN_ANGLE_DEGREES = 30.0  # soft shadows
LIGHTING = (f"uniform white sky (strength {SKY_STRENGTH}) and a sun straight overhead (strength "
            f"{SUN_STRENGTH:.3f}, {SUN_ANGLE_DEGREES:g} degree disc); the asset's lights removed; transparent background")
NORMALISER = "vividzoo_normalise"
BLENDER_VERSION = bpy.app.version_string
Binding = tuple[bpy.types.ID, bpy.types.Action, "bpy.types.ActionSlot | None"]


class AssetError(Exception):
    """The asset cannot be rendered (not importable, no animation, no geometry); the message says why."""


def load_asset(path: Path, fps: int) -> None:
    """A fresh scene holding only ``path``; glTF/FBX keys are placed at ``fps`` frames per second."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".blend":
            bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False)
            return
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = fps, 1.0
        if suffix in (".glb", ".gltf"):
            bpy.ops.import_scene.gltf(filepath=str(path))
        elif suffix == ".fbx":
            bpy.ops.import_scene.fbx(filepath=str(path), use_anim=True)
        else:
            raise AssetError(f"unsupported file type {suffix}")
    except RuntimeError as error:
        lines = [line for line in str(error).splitlines() if line.strip()]
        raise AssetError(f"Blender cannot import it: {lines[-1] if lines else error}") from None


def find_animations() -> dict[str, list[Binding]]:
    """Every action with keys, by name, with the owners (and slots) it was assigned to or stashed on.

    The FBX importer assigns one take and keeps the others as unassigned actions named
    ``<object>|<take>``: those are bound to the object their name starts with.
    """
    animations: dict[str, list[Binding]] = {}
    for owner in _animation_owners():
        data = owner.animation_data
        candidates = [(data.action, data.action_slot)]
        candidates += [(strip.action, strip.action_slot) for track in data.nla_tracks for strip in track.strips]
        for action, slot in candidates:
            if action is None or not _has_keys(action):
                continue
            bindings = animations.setdefault(action.name, [])
            if all(bound is not owner for bound, _, _ in bindings):
                bindings.append((owner, action, slot))
    objects = bpy.context.scene.objects
    for action in bpy.data.actions:
        owner = objects.get(action.name.split("|", 1)[0])
        if action.name not in animations and owner is not None and _has_keys(action) and len(action.slots) == 1:
            owner.animation_data_create()
            animations[action.name] = [(owner, action, action.slots[0])]
    return animations


def play(bindings: list[Binding]) -> tuple[float, float]:
    """Makes ``bindings`` the only animation that plays; returns its frame range in the scene's frames."""
    for owner in _animation_owners():
        owner.animation_data.action = None
        for track in owner.animation_data.nla_tracks:
            track.mute = True
    for owner, action, slot in bindings:
        owner.animation_data.action = action
        if slot is not None:
            owner.animation_data.action_slot = slot
    starts, ends = zip(*(action.frame_range for _, action, _ in bindings))
    return float(min(starts)), float(max(ends))


def scene_fps() -> float:
    render = bpy.context.scene.render
    return render.fps / render.fps_base


def set_frame(frame: float) -> None:
    whole = math.floor(frame)
    bpy.context.scene.frame_set(int(whole), subframe=frame - whole)


def world_points() -> np.ndarray:
    """``(n, 3)`` world positions of every rendered vertex at the current frame (instances included)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    chunks = []
    for instance in depsgraph.object_instances:
        evaluated = instance.object
        if evaluated.type not in GEOMETRY_TYPES or evaluated.original.hide_render:
            continue
        mesh = evaluated.to_mesh()
        try:
            points = np.empty(3 * len(mesh.vertices))
            mesh.vertices.foreach_get("co", points)
        finally:
            evaluated.to_mesh_clear()
        matrix = np.array(instance.matrix_world)
        chunks.append(points.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3])
    return np.concatenate(chunks) if chunks else np.empty((0, 3))


def bounding_box(frames: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest world coordinates of the geometry over all ``frames``."""
    low, high = np.full(3, np.inf), np.full(3, -np.inf)
    for frame in frames:
        set_frame(frame)
        points = world_points()
        if len(points):
            low, high = np.minimum(low, points.min(0)), np.maximum(high, points.max(0))
    if not np.all(np.isfinite(low)):
        raise AssetError("it has no mesh (no geometry to render)")
    return low, high


def normalise(centre: np.ndarray, scale: float) -> None:
    """Parents every root object to an empty that maps ``p`` to ``scale * (p - centre)``."""
    empty = bpy.data.objects.new(NORMALISER, None)
    bpy.context.scene.collection.objects.link(empty)
    empty.matrix_world = Matrix.Diagonal((scale, scale, scale, 1.0)) @ Matrix.Translation(-centre)
    for obj in bpy.context.scene.objects:
        if obj.parent is None and obj is not empty:
            obj.parent = empty  # parent inverse stays identity: world = empty @ own transform


def remove_lights_and_cameras() -> None:
    for obj in list(bpy.context.scene.objects):
        if obj.type in ("LIGHT", "CAMERA", "LIGHT_PROBE"):
            bpy.data.objects.remove(obj)


def add_cameras(unit_matrices: np.ndarray, radius: float, fov_degrees: float) -> list[bpy.types.Object]:
    """One pinhole camera per camera-to-world matrix, moved out from unit distance to ``radius``."""
    cameras = []
    for index, unit_matrix in enumerate(unit_matrices):
        data = bpy.data.cameras.new(f"vividzoo_view_{index:03d}")
        data.lens_unit, data.sensor_fit, data.angle = "FOV", "AUTO", math.radians(fov_degrees)
        data.clip_start, data.clip_end = 0.01, 100.0
        camera = bpy.data.objects.new(data.name, data)
        bpy.context.scene.collection.objects.link(camera)
        matrix = np.array(unit_matrix, dtype=np.float64)
        matrix[:3, 3] *= radius
        camera.matrix_world = Matrix(matrix.tolist())
        cameras.append(camera)
    return cameras


def configure_render(settings: RenderSettings) -> None:
    """Engine, samples, output format (RGBA PNG, colours as authored) and the lighting of :data:`LIGHTING`."""
    scene = bpy.context.scene
    render = scene.render
    render.engine = "CYCLES" if settings.engine == "cycles" else "BLENDER_EEVEE"
    render.resolution_x = render.resolution_y = settings.resolution
    render.resolution_percentage, render.pixel_aspect_x, render.pixel_aspect_y = 100, 1.0, 1.0
    render.film_transparent = True
    render.use_motion_blur = render.use_compositing = render.use_sequencer = False
    render.image_settings.file_format, render.image_settings.color_mode = "PNG", "RGBA"
    render.image_settings.color_depth = "8"
    scene.view_settings.view_transform, scene.view_settings.look = "Standard", "None"
    scene.view_settings.exposure, scene.view_settings.gamma = 0.0, 1.0
    if settings.threads:
        render.threads_mode, render.threads = "FIXED", settings.threads
    if settings.engine == "cycles":
        scene.cycles.samples = settings.samples
        scene.cycles.use_denoising = settings.denoise
        scene.cycles.seed = settings.seed
        scene.cycles.device = "CPU"
        if settings.device == "gpu":
            _enable_gpu()
            scene.cycles.device = "GPU"
    else:
        scene.eevee.taa_render_samples = settings.samples
    world = bpy.data.worlds.new("vividzoo_sky")
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    background.inputs["Strength"].default_value = SKY_STRENGTH
    scene.world = world
    sun = bpy.data.lights.new("vividzoo_overhead_sun", "SUN")  # unrotated, a sun shines straight down (-z)
    sun.energy, sun.angle = SUN_STRENGTH, math.radians(SUN_ANGLE_DEGREES)
    scene.collection.objects.link(bpy.data.objects.new(sun.name, sun))


def render_views(cameras: list[bpy.types.Object], frame: float, paths: list[Path]) -> None:
    """Renders ``frame`` from every camera into the matching path."""
    scene = bpy.context.scene
    set_frame(frame)
    for camera, path in zip(cameras, paths):
        scene.camera = camera
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)


def _enable_gpu() -> None:
    preferences = bpy.context.preferences.addons["cycles"].preferences
    for backend in GPU_BACKENDS:
        try:
            preferences.compute_device_type = backend
        except TypeError:
            continue
        preferences.get_devices()
        if any(device.type == backend for device in preferences.devices):
            for device in preferences.devices:
                device.use = device.type == backend
            return
    raise AssetError("--device gpu: Cycles finds no GPU here (tried OptiX, CUDA, HIP, oneAPI, Metal); use --device cpu")


def _has_keys(action: bpy.types.Action) -> bool:
    return action.frame_range[1] > action.frame_range[0]


def _animation_owners() -> list[bpy.types.ID]:
    owners = [obj for obj in bpy.context.scene.objects if obj.animation_data is not None]
    owners += [key for key in bpy.data.shape_keys if key.animation_data is not None]
    return owners

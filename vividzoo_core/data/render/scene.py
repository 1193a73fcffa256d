"""The Blender side of ``dataset render``: import an asset, play one animation, frame it, light it, render.

Runs only inside a worker process (it imports ``bpy``). An animation is one action (or one FBX take)
together with what it drives (objects, bones, shape keys, cameras, materials), found on each owner's
active action and its NLA strips or, for an FBX take the importer left unassigned, by the action's
name; playing it mutes everything else. The object is framed (as it renders, whatever the viewport
hides) by a parent empty that maps a world point ``p`` to ``scale * (p - centre)``, so the asset's own
hierarchy, rig and modifiers stay untouched. Lighting (:data:`LIGHTING`) is the same from every
azimuth: a uniform white sky and a soft sun straight overhead that gives shape cues (a white top
renders 255, its sides 207: 0.62 in linear light); the asset's own lights and cameras are removed and
the background is transparent.
"""

from __future__ import annotations

import math
import re
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
LIGHTING = (
    f"uniform white sky (strength {SKY_STRENGTH}) and a sun straight overhead (strength "
    f"{SUN_STRENGTH:.3f}, {SUN_ANGLE_DEGREES:g} degree disc); the asset's lights removed; transparent background"
)
NORMALISER = "vividzoo_normalise"
OWNER_KINDS = {"OBJECT": "objects", "KEY": "shape_keys", "CAMERA": "cameras", "LIGHT": "lights",
               "MATERIAL": "materials"}
"""The data-blocks importers animate, by action slot type, and where ``bpy.data`` keeps them."""
MOVING_OWNERS = (bpy.types.Object, bpy.types.Key, bpy.types.Camera, bpy.types.Light)
"""Owners whose keys change a render only by moving geometry (a material's keys change it in place)."""
BLENDER_VERSION = bpy.app.version_string
Binding = tuple[bpy.types.ID, bpy.types.Action, "bpy.types.ActionSlot | None"]


class AssetError(Exception):
    """The asset cannot be rendered (not importable, no animation, no geometry); the message says why."""


def load_asset(path: Path, fps: int) -> None:
    """A fresh scene holding only ``path``; glTF/FBX keys are placed at ``fps`` frames per second.

    The viewport then shows exactly what renders (framing evaluates the viewport's depsgraph, and an
    asset may hide in the viewport what it renders), and a scene with nothing to render is refused.
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".blend":
            bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False)
        else:
            bpy.ops.wm.read_factory_settings(use_empty=True)
            bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = fps, 1.0
            if suffix in (".glb", ".gltf"):
                bpy.ops.import_scene.gltf(filepath=str(path))
            elif suffix == ".fbx":
                _restore_light_shadow_setting()
                bpy.ops.import_scene.fbx(filepath=str(path), use_anim=True)
            else:
                raise AssetError(f"unsupported file type {suffix}")
    except RuntimeError as error:
        raise AssetError(f"Blender cannot import it: {error_line(str(error))}") from None
    _show_in_viewport_what_renders()
    if not len(world_points()):
        raise AssetError("it has no mesh (no geometry to render)")


def error_line(message: str) -> str:
    """The line of a Blender error that says what went wrong.

    Blender reports an operator's Python exception (an importer's, say) as its whole traceback followed
    by ``Location: .../ops.py:N``; the reason is the exception's own line, the last before ``Location``.
    """
    lines = [line.strip() for line in message.splitlines() if line.strip() and not line.strip().startswith("Location:")]
    return lines[-1].removeprefix("Error: ") if lines else message.strip()


def _restore_light_shadow_setting() -> None:
    """Gives Cycles' light settings back ``cast_shadow``: Blender 5 removed it, bpy 5.0.1's FBX importer sets it.

    Without it every FBX file holding a light fails to import; the value is never used, since the
    asset's lights are removed before rendering.
    """
    from cycles.properties import CyclesLightSettings

    if "cast_shadow" not in CyclesLightSettings.bl_rna.properties:
        CyclesLightSettings.cast_shadow = bpy.props.BoolProperty(name="Cast Shadow (FBX importer)")


def _show_in_viewport_what_renders() -> None:
    """Viewport visibility set to render visibility, for every collection and object of the scene."""
    for collection in bpy.data.collections:
        collection.hide_viewport = collection.hide_render
    layers = [bpy.context.view_layer.layer_collection]
    while layers:
        layer = layers.pop()
        layer.hide_viewport = False
        layers += list(layer.children)
    for obj in bpy.context.view_layer.objects:
        obj.hide_viewport = obj.hide_render
        obj.hide_set(False)


def find_animations() -> dict[str, list[Binding]]:
    """Every animation, by name, with the owners (and slots) its actions play on.

    glTF and .blend: an action with keys, assigned to or stashed on its owners (a slot per owner).
    FBX: a take, which the importer turns into one action ``<owner>|<take>`` per animated owner
    (object, shape keys, camera, material), assigning only the first take: the actions are grouped
    by take, and an unassigned one is bound to the owner of its slot's type that its name starts with.
    """
    bindings: list[Binding] = []
    for owner in _animation_owners():
        data = owner.animation_data
        candidates = [(data.action, data.action_slot)]
        candidates += [(strip.action, strip.action_slot) for track in data.nla_tracks for strip in track.strips]
        for action, slot in candidates:
            if action is not None and _has_keys(action) and all(o != owner or a != action for o, a, _ in bindings):
                bindings.append((owner, action, slot))
    bound = {action for _, action, _ in bindings}
    for action in bpy.data.actions:
        if action not in bound and _has_keys(action) and len(action.slots) == 1:
            owner = _owner_named_in(action)
            if owner is not None:
                bindings.append((owner, action, action.slots[0]))
    animations: dict[str, list[Binding]] = {}
    for binding in bindings:
        animations.setdefault(_take_name(*binding), []).append(binding)
    return animations


def play(bindings: list[Binding]) -> tuple[float, float]:
    """Makes ``bindings`` the only animation that plays; returns its frame range in the scene's frames."""
    for owner in _animation_owners():
        owner.animation_data.action = None
        for track in owner.animation_data.nla_tracks:
            track.mute = True
    for owner, action, slot in bindings:
        owner.animation_data_create()
        owner.animation_data.action = action
        if slot is not None:
            owner.animation_data.action_slot = slot
    starts, ends = zip(*(action.frame_range for _, action, _ in bindings))
    return float(min(starts)), float(max(ends))


def only_moves(bindings: list[Binding]) -> bool:
    """Whether the animation can change a frame only by moving things (not by changing a material's look)."""
    return all(isinstance(owner, MOVING_OWNERS) for owner, _, _ in bindings)


def scene_fps() -> float:
    render = bpy.context.scene.render
    return render.fps / render.fps_base


def current_frame() -> float:
    return float(bpy.context.scene.frame_current)


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


def bounding_box(frames: list[float]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Lowest and highest world coordinates of the geometry over all ``frames``, and whether any vertex moves."""
    low, high = np.full(3, np.inf), np.full(3, -np.inf)
    first, moves = None, False
    for frame in frames:
        set_frame(frame)
        points = world_points()
        if len(points):
            low, high = np.minimum(low, points.min(0)), np.maximum(high, points.max(0))
        first = points if first is None else first
        moves = moves or not np.array_equal(points, first)
    if not np.all(np.isfinite(low)):
        raise AssetError("it has no mesh (no geometry to render)")
    return low, high, moves


def normalise(
    low: np.ndarray, high: np.ndarray, sphere_radius: float, turn_degrees: float = 0.0
) -> tuple[np.ndarray, float]:
    """Frames the box ``[low, high]``: centred at the origin, scaled into a sphere of ``sphere_radius`` (its
    circumscribed sphere), turned by ``turn_degrees`` about z (counter-clockwise seen from above).

    Parents every root object to an empty that maps ``p`` to ``R_z(turn) scale (p - centre)``; returns
    ``(centre, scale)``.
    """
    half_diagonal = float(np.linalg.norm(high - low)) / 2
    if half_diagonal < 1e-9:
        raise AssetError("its geometry is a single point")
    centre, scale = (low + high) / 2, sphere_radius / half_diagonal
    empty = bpy.data.objects.new(NORMALISER, None)
    bpy.context.scene.collection.objects.link(empty)
    empty.matrix_world = (
        Matrix.Rotation(math.radians(turn_degrees), 4, "Z")
        @ Matrix.Diagonal((scale, scale, scale, 1.0))
        @ Matrix.Translation(-centre)
    )
    for obj in bpy.context.scene.objects:
        if obj.parent is None and obj is not empty:
            obj.parent = empty  # parent inverse stays identity: world = empty @ own transform
    return centre, scale


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
    """Everything animated: objects of the scene and every data-block an importer animates."""
    owners = [obj for obj in bpy.context.scene.objects if obj.animation_data is not None]
    for kind in OWNER_KINDS.values():
        owners += [data for data in getattr(bpy.data, kind) if kind != "objects" and data.animation_data is not None]
    return owners


def _owner_named_in(action: bpy.types.Action) -> bpy.types.ID | None:
    """The data-block of the action's slot type whose name starts the action's name (``<owner>|<take>``)."""
    kind = OWNER_KINDS.get(action.slots[0].target_id_type)
    if kind is None or "|" not in action.name:
        return None
    owners = bpy.context.scene.objects if kind == "objects" else getattr(bpy.data, kind)
    return owners.get(action.name.split("|", 1)[0])


def _take_name(owner: bpy.types.ID, action: bpy.types.Action, slot: bpy.types.ActionSlot | None) -> str:
    """The FBX take of an action named ``<owner>|<take>``, else the action's name.

    An object and its camera (or light) often share a name; the importer then calls the data's action
    ``<owner>|<take>.001``, which still belongs to ``<take>``.
    """
    prefix = f"{owner.name}|"
    if not action.name.startswith(prefix):
        return action.name
    take = action.name.removeprefix(prefix)
    base = re.sub(r"\.\d{3}$", "", take)
    twin = bpy.data.actions.get(prefix + base)
    if base != take and twin is not None and slot is not None and twin.slots \
            and twin.slots[0].target_id_type != slot.target_id_type:
        return base
    return take

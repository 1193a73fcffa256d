"""Small animated assets with known motion, for the render tests, the bench and trying the command.

``python -m vividzoo_core.data.render.sample_asset OUT.glb [--static] [--body] [--frames N]`` writes one
mesh object holding two emissive marker cubes (red and blue) and, with ``--body``, a shaded sphere
between them. Each of the actions in ``ACTIONS`` keys the object's location and rotation at frames
1..N (24 fps) with linear interpolation; :func:`marker_centres` gives where the marker centres are at
any frame in between, so a render can be checked pixel by pixel. ``OUT.blend`` saves the Blender file
and ``OUT.fbx`` exports FBX (one take per action) instead of glTF; ``--static`` writes the same mesh
with no animation, ``--hollow`` the animation on an empty object (no geometry).

What real collections hold, each on request: ``--light`` a point light with an action of its own
(``sway``), ``--camera`` a camera whose action (``fly``) moves it and changes its lens, ``--hidden`` a
box hidden in the viewport but rendered, ``--rig`` instead of the markers a column skinned to a two-bone
armature whose action (``bend``) turns the upper bone and, in the same action, grows a shape key.
``--facing`` instead of the markers a static grey box (:data:`FACING_BOXES`) with a red marker on its front
(-y, what glTF calls its front) and a blue one on its left side (+x): which side a view shows.
``--vertices OUT.npz`` records, per action that moves geometry, the world position of every rendered
vertex at frames 1..N, evaluated in the scene as built (before any export): what a render must show.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

MARKER_OFFSETS = np.array([[0.3, 0.0, 0.4], [-0.3, 0.0, -0.4]])  # red, blue; Blender world, z up
MARKER_COLOURS = ((1.0, 0.0, 0.0, 1.0), (0.0, 0.0, 1.0, 1.0))
MARKER_SIZE = 0.1
ACTIONS = {"move": 1.0, "turn": -1.0}
RIG_ACTION = "bend"
FACING_BOXES = {"body": ((0.0, 0.0, 0.0), 0.6), "front": ((0.0, -0.4, -0.1), 0.2), "left": ((0.4, 0.0, -0.1), 0.2)}
"""Name: (centre, edge length) of the axis-aligned cubes of ``--facing``; the markers sit low, so that the
body hides each from the camera opposite it (15 degrees above)."""
FPS = 24


def object_pose(action: str, frame: float) -> tuple[np.ndarray, float]:
    """Location and rotation about z (radians) of the object at ``frame`` (linear in time, like its keys)."""
    sign = ACTIONS[action]
    return np.array([0.2 * sign * frame, 0.0, 0.05 * frame]), sign * 0.3 * frame


def marker_centres(action: str, frame: float) -> np.ndarray:
    """``(2, 3)`` world positions of the red and blue marker centres at ``frame`` (1 to the last key)."""
    location, angle = object_pose(action, frame)
    rotation = np.array([[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0], [0, 0, 1]])
    return location + MARKER_OFFSETS @ rotation.T


def write_asset(path: Path, frames: int = 6, animated: bool = True, body: bool = False, hollow: bool = False,
                light: bool = False, camera: bool = False, hidden: bool = False, rig: bool = False,
                vertices: Path | None = None, facing: bool = False) -> None:
    """Builds the asset in a fresh Blender scene; exports glTF (binary for ``.glb``) or FBX, or saves ``.blend``."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = FPS
    if rig:
        _add_rig(frames)
    elif facing:
        _add_facing()
    else:
        _add_markers(frames, animated, body, hollow)
    if light:
        lamp = _link("lamp", bpy.data.lights.new("lamp", "POINT"))
        _animate(lamp, "sway", frames, {"location": lambda frame: (2.0, 0.5 * frame, 2.0)})
    if camera:
        view = _link("cam", bpy.data.cameras.new("cam"))
        _animate(view, "fly", frames, {"location": lambda frame: (4.0, -4.0 + 0.5 * frame, 1.0)})
        _animate(view.data, "fly", frames, {"lens": lambda frame: 30.0 + 5.0 * frame})
    if hidden:
        box = _link("hidden_box", _box_mesh("hidden_box", (0.7, 0.0, 1.2), 0.3))
        box.hide_viewport = True
    if vertices is not None:
        np.savez(vertices, **_record_vertices(frames))
    if path.suffix.lower() == ".blend":
        bpy.ops.wm.save_as_mainfile(filepath=str(path))
    elif path.suffix.lower() == ".fbx":
        bpy.ops.export_scene.fbx(filepath=str(path), bake_anim_use_all_actions=False, bake_anim_use_nla_strips=True,
                                 add_leaf_bones=False)
    else:
        bpy.ops.export_scene.gltf(filepath=str(path), export_animation_mode="ACTIONS")


def _add_markers(frames: int, animated: bool, body: bool, hollow: bool) -> None:
    import bmesh
    import bpy  # first: it makes bmesh importable

    mesh = bpy.data.meshes.new("markers")
    shape = bmesh.new()
    for index, offset in enumerate(MARKER_OFFSETS):
        cube = bmesh.ops.create_cube(shape, size=MARKER_SIZE)["verts"]
        bmesh.ops.translate(shape, verts=cube, vec=offset)
        for face in {face for vertex in cube for face in vertex.link_faces}:
            face.material_index = index
    if body:
        sphere = bmesh.ops.create_icosphere(shape, subdivisions=5, radius=0.25)["verts"]
        for face in {face for vertex in sphere for face in vertex.link_faces}:
            face.material_index = len(MARKER_COLOURS)
    shape.to_mesh(mesh)
    for colour, name in zip(MARKER_COLOURS, ("red", "blue")):
        mesh.materials.append(_material(name, (0.0, 0.0, 0.0, 1.0), colour))
    mesh.materials.append(_material("body", (0.6, 0.6, 0.6, 1.0), (0.0, 0.0, 0.0, 1.0)))
    obj = _link("markers", None if hollow else mesh)
    if animated:
        for name in ACTIONS:
            _animate(obj, name, frames, {"location": lambda frame, n=name: object_pose(n, frame)[0].tolist(),
                                         "rotation_euler": lambda frame, n=name: (0.0, 0.0, object_pose(n, frame)[1])})


def _add_facing() -> None:
    import bmesh
    import bpy  # first: it makes bmesh importable

    mesh = bpy.data.meshes.new("facing")
    shape = bmesh.new()
    for index, (centre, size) in enumerate(FACING_BOXES.values()):
        cube = bmesh.ops.create_cube(shape, size=size)["verts"]
        bmesh.ops.translate(shape, verts=cube, vec=centre)
        for face in {face for vertex in cube for face in vertex.link_faces}:
            face.material_index = index
    shape.to_mesh(mesh)
    mesh.materials.append(_material("body", (0.6, 0.6, 0.6, 1.0), (0.0, 0.0, 0.0, 1.0)))
    for colour, name in zip(MARKER_COLOURS, ("red", "blue")):
        mesh.materials.append(_material(name, (0.0, 0.0, 0.0, 1.0), colour))
    _link("facing", mesh)


def _add_rig(frames: int) -> None:
    """A 1.0 tall column of 8 rings skinned to a lower and an upper bone (blended in the middle), with a shape key."""
    import bpy

    mesh = bpy.data.meshes.new("column")
    rings = [[(x, y, z / 7) for x, y in ((-0.1, -0.1), (0.1, -0.1), (0.1, 0.1), (-0.1, 0.1))] for z in range(8)]
    sides = [(4 * k + i, 4 * k + (i + 1) % 4, 4 * k + 4 + (i + 1) % 4, 4 * k + 4 + i)
             for k in range(7) for i in range(4)]
    mesh.from_pydata([point for ring in rings for point in ring], [], sides + [(3, 2, 1, 0), (28, 29, 30, 31)])
    mesh.materials.append(_material("body", (0.6, 0.6, 0.6, 1.0), (0.0, 0.0, 0.0, 1.0)))
    column = _link("column", mesh)
    armature = _link("rig", bpy.data.armatures.new("rig"))
    bpy.context.view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    lower = armature.data.edit_bones.new("lower")
    lower.head, lower.tail = (0.0, 0.0, 0.0), (0.0, 0.0, 0.5)
    upper = armature.data.edit_bones.new("upper")
    upper.head, upper.tail, upper.parent = (0.0, 0.0, 0.5), (0.0, 0.0, 1.0), lower
    bpy.ops.object.mode_set(mode="OBJECT")
    column.parent = armature
    column.modifiers.new("skin", "ARMATURE").object = armature
    groups = {name: column.vertex_groups.new(name=name) for name in ("lower", "upper")}
    for vertex in mesh.vertices:
        share = min(max((vertex.co.z - 0.35) / 0.3, 0.0), 1.0)  # 0 below 0.35, 1 above 0.65
        for name, weight in (("lower", 1.0 - share), ("upper", share)):
            if weight:
                groups[name].add([vertex.index], weight, "REPLACE")
    column.shape_key_add(name="Basis")
    bulge = column.shape_key_add(name="bulge")
    for point, vertex in zip(bulge.data, mesh.vertices):
        if vertex.co.z > 0.9:
            point.co = (3.0 * vertex.co.x, 3.0 * vertex.co.y, vertex.co.z)
    bone = armature.pose.bones["upper"]
    bone.rotation_mode = "XYZ"
    def progress(frame: int) -> float:
        return (frame - 1) / (frames - 1)

    _animate(armature, RIG_ACTION, frames,
             {'pose.bones["upper"].rotation_euler': lambda frame: (math.radians(60) * progress(frame), 0.0, 0.0)})
    _animate(mesh.shape_keys, RIG_ACTION, frames, {'key_blocks["bulge"].value': progress})


def _animate(owner, name: str, frames: int, channels: dict) -> None:
    """Keys ``owner``'s properties (data path -> value at a frame) at frames 1..N, linear, into action ``name``.

    The action is stashed on an NLA track of its name, so exporters write one take per action; an
    owner already keyed by an action of that name gets its own slot in it.
    """
    import bpy

    owner.animation_data_create()
    owner.animation_data.action = bpy.data.actions.get(name) or bpy.data.actions.new(name)
    for frame in range(1, frames + 1):
        for path, value in channels.items():
            holder, _, attribute = path.rpartition(".")
            target = owner.path_resolve(holder) if holder else owner
            setattr(target, attribute, value(frame))
            owner.keyframe_insert(path, frame=frame)
    for channels_of_slot in (bag for layer in owner.animation_data.action.layers for strip in layer.strips
                             for bag in strip.channelbags if bag.slot == owner.animation_data.action_slot):
        for curve in channels_of_slot.fcurves:
            for key in curve.keyframe_points:
                key.interpolation = "LINEAR"
    track = owner.animation_data.nla_tracks.new()
    track.name = name
    strip = track.strips.new(name, 1, owner.animation_data.action)
    strip.action_slot = owner.animation_data.action_slot
    owner.animation_data.action = None


def _record_vertices(frames: int) -> dict[str, np.ndarray]:
    """``{action: (frames, vertices, 3)}`` world positions of every rendered mesh vertex, for each action
    that moves one, playing that action alone (on every owner that has it)."""
    import bpy

    owners = [owner for kind in (bpy.data.objects, bpy.data.shape_keys, bpy.data.cameras) for owner in kind
              if owner.animation_data]
    hidden = [obj for obj in bpy.data.objects if obj.hide_viewport]
    for obj in hidden:
        obj.hide_viewport = False  # rendered: part of what a render must show
    recorded = {}
    for name in sorted({track.name for owner in owners for track in owner.animation_data.nla_tracks}):
        for owner in owners:
            tracks = [track for track in owner.animation_data.nla_tracks if track.name == name]
            strips = [strip for track in tracks for strip in track.strips]
            owner.animation_data.use_nla = False
            owner.animation_data.action = strips[0].action if strips else None
            if strips:
                owner.animation_data.action_slot = strips[0].action_slot
        positions = []
        for frame in range(1, frames + 1):
            bpy.context.scene.frame_set(frame)
            depsgraph = bpy.context.evaluated_depsgraph_get()
            chunks = []
            for obj in (o.evaluated_get(depsgraph) for o in bpy.data.objects if o.type == "MESH" and not o.hide_render):
                points = np.array([vertex.co for vertex in obj.to_mesh().vertices])
                obj.to_mesh_clear()
                matrix = np.array(obj.matrix_world)
                chunks.append(points @ matrix[:3, :3].T + matrix[:3, 3])
            positions.append(np.concatenate(chunks))
        if not all(np.array_equal(points, positions[0]) for points in positions):
            recorded[name] = np.stack(positions)
    for owner in owners:
        owner.animation_data.action = None
        owner.animation_data.use_nla = True
    for obj in hidden:
        obj.hide_viewport = True
    return recorded


def _link(name: str, data):
    import bpy

    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def _box_mesh(name: str, centre: tuple[float, float, float], size: float):
    import bmesh
    import bpy  # first: it makes bmesh importable

    mesh = bpy.data.meshes.new(name)
    shape = bmesh.new()
    bmesh.ops.translate(shape, verts=bmesh.ops.create_cube(shape, size=size)["verts"], vec=centre)
    shape.to_mesh(mesh)
    mesh.materials.append(_material(name, (0.6, 0.6, 0.6, 1.0), (0.0, 0.0, 0.0, 1.0)))
    return mesh


def _material(name: str, base: tuple[float, ...], emission: tuple[float, ...]):
    import bpy

    material = bpy.data.materials.new(name)
    shader = material.node_tree.nodes["Principled BSDF"]
    shader.inputs["Base Color"].default_value = base
    shader.inputs["Emission Color"].default_value = emission
    shader.inputs["Emission Strength"].default_value = 1.0
    return material


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--static", action="store_true")
    parser.add_argument("--body", action="store_true")
    parser.add_argument("--hollow", action="store_true", help="an animated empty: no geometry at all")
    parser.add_argument("--light", action="store_true", help="a point light with an action of its own")
    parser.add_argument("--camera", action="store_true", help="a camera with an action of its own (moves, zooms)")
    parser.add_argument("--hidden", action="store_true", help="a box hidden in the viewport but rendered")
    parser.add_argument("--rig", action="store_true", help="a skinned column with a shape key instead of the markers")
    parser.add_argument("--vertices", type=Path, help="record every rendered vertex per action and frame (.npz)")
    parser.add_argument(
        "--facing", action="store_true", help="a static box with a red marker in front, a blue one left"
    )
    args = parser.parse_args()
    write_asset(args.path, args.frames, not args.static, args.body, args.hollow, args.light, args.camera, args.hidden,
                args.rig, args.vertices, args.facing)

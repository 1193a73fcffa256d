"""Small animated glTF assets with known motion, for the render tests, the bench and trying the command.

``python -m vividzoo_core.data.render.sample_asset OUT.glb [--static] [--body] [--frames N]`` writes one
mesh object holding two emissive marker cubes (red and blue) and, with ``--body``, a shaded sphere
between them. Each of the actions in ``ACTIONS`` keys the object's location and rotation at frames
1..N (24 fps) with linear interpolation; :func:`marker_centres` gives where the marker centres are at
any frame in between, so a render can be checked pixel by pixel. ``OUT.blend`` saves the Blender file
and ``OUT.fbx`` exports FBX instead of glTF; ``--static`` writes the same mesh with no animation,
``--hollow`` the animation on an empty object (no geometry).
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


def write_asset(path: Path, frames: int = 6, animated: bool = True, body: bool = False, hollow: bool = False) -> None:
    """Builds the asset in a fresh Blender scene; exports glTF (binary for ``.glb``) or saves ``.blend``."""
    import bpy  # first: it makes bmesh importable
    import bmesh

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = FPS
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
    obj = bpy.data.objects.new("markers", None if hollow else mesh)
    bpy.context.scene.collection.objects.link(obj)
    if animated:
        obj.animation_data_create()
        for name in ACTIONS:
            obj.animation_data.action = bpy.data.actions.new(name)
            for frame in range(1, frames + 1):
                location, angle = object_pose(name, frame)
                obj.location, obj.rotation_euler = location.tolist(), (0.0, 0.0, angle)
                obj.keyframe_insert("location", frame=frame)
                obj.keyframe_insert("rotation_euler", frame=frame)
            for channels in (bag for layer in obj.animation_data.action.layers for strip in layer.strips
                             for bag in strip.channelbags):
                for curve in channels.fcurves:
                    for key in curve.keyframe_points:
                        key.interpolation = "LINEAR"
            track = obj.animation_data.nla_tracks.new()
            track.name = name
            track.strips.new(name, 1, obj.animation_data.action)
        obj.animation_data.action = None
    if path.suffix.lower() == ".blend":
        bpy.ops.wm.save_as_mainfile(filepath=str(path))
    elif path.suffix.lower() == ".fbx":
        bpy.ops.export_scene.fbx(filepath=str(path), bake_anim_use_all_actions=True)
    else:
        bpy.ops.export_scene.gltf(filepath=str(path), export_animation_mode="ACTIONS")


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
    args = parser.parse_args()
    write_asset(args.path, args.frames, not args.static, args.body, args.hollow)

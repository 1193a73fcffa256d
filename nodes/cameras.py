"""Camera pose builders (MVDream convention) and a preview of the poses around the object."""

from __future__ import annotations

import json
import os

import folder_paths
import numpy as np
import torch
from comfy_api.latest import io, ui

from ..vividzoo_core.camera_preview import draw_rig
from ..vividzoo_core.cameras import cameras_from_json, load_cameras, moving_orbit, orbit
from ..vividzoo_core.errors import VividZooError
from ..vividzoo_core.settings import AZIMUTH_START, ELEVATION, FRAMES, TURN
from .inputs import numbers_in_range, setting_input, views_input
from .types import Cameras


def _views() -> io.Int.Input:
    return views_input("Number of camera views around the object (MVDream: 4).")


def _azimuth_span() -> io.Float.Input:
    return io.Float.Input("azimuth_span", default=360.0, min=0.0, max=360.0, step=1.0,
                          tooltip="Degrees the views spread over: view i sits at start + i * span / views.")


class OrbitCameras(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_OrbitCameras",
            display_name="Vivid-ZOO Orbit Cameras",
            search_aliases=["orbit", "turntable", "multiview", "multi-view", "cameras"],
            category="VividZoo/cameras",
            description="A static ring of cameras around the object, the same for every frame (the paper's setting: "
                        "4 views at azimuth 0/90/180/270, elevation 15).",
            inputs=[_views(), setting_input(ELEVATION), setting_input(AZIMUTH_START), _azimuth_span()],
            outputs=[Cameras.Output(display_name="cameras", tooltip="Camera poses for any number of frames.")],
        )

    @classmethod
    def validate_inputs(cls, elevation=None, azimuth_start=None, azimuth_span=None) -> bool | str:
        return numbers_in_range(cls, elevation=elevation, azimuth_start=azimuth_start, azimuth_span=azimuth_span)

    @classmethod
    def execute(cls, views: int, elevation: float, azimuth_start: float, azimuth_span: float) -> io.NodeOutput:
        return io.NodeOutput(orbit(views, elevation, azimuth_start, azimuth_span))


class OrbitTrajectory(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_OrbitTrajectory",
            display_name="Vivid-ZOO Orbit Trajectory (turntable)",
            search_aliases=["orbit", "turntable", "moving cameras", "4D"],
            category="VividZoo/cameras",
            description="The ring of cameras turning around the object while it moves (a turntable): frame f is "
            "rotated by turn * f / frames, so a full turn loops seamlessly. The elevation can rise or "
            "fall over the clip. frames must equal the video's frame count.",
            inputs=[
                _views(),
                setting_input(FRAMES, tooltip="Frames of the video (the latent's frames)."),
                setting_input(ELEVATION),
                setting_input(
                    ELEVATION, "elevation_end", "Elevation at the last frame (equal to elevation: constant)."
                ),
                setting_input(AZIMUTH_START),
                _azimuth_span(),
                setting_input(
                    TURN, tooltip="Degrees the whole ring turns over the clip (negative: the other way).", default=360.0
                ),  # this node is the turntable: it turns unless told otherwise
            ],
            outputs=[Cameras.Output(display_name="cameras", tooltip="Per-frame camera poses.")],
        )

    @classmethod
    def validate_inputs(cls, elevation=None, elevation_end=None, azimuth_start=None, azimuth_span=None,
                        turn=None) -> bool | str:
        return numbers_in_range(cls, elevation=elevation, elevation_end=elevation_end, azimuth_start=azimuth_start,
                                azimuth_span=azimuth_span, turn=turn)

    @classmethod
    def execute(cls, views: int, frames: int, elevation: float, elevation_end: float, azimuth_start: float,
                azimuth_span: float, turn: float) -> io.NodeOutput:
        return io.NodeOutput(moving_orbit(views, frames, elevation, azimuth_start, azimuth_span, turn, elevation_end))


class CamerasFromJSON(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_CamerasFromJSON",
            display_name="Vivid-ZOO Cameras From JSON",
            search_aliases=["transforms.json", "cameras.json", "NeRF"],
            category="VividZoo/cameras",
            description="Camera poses from JSON: a Vivid-ZOO cameras.json, a NeRF-style transforms.json (positions "
                        "are scaled to MVDream's unit distance), or a list of 16-number camera-to-world matrices. "
                        "Paste the JSON, or give a file name in ComfyUI's input folder or a full path.",
            inputs=[io.String.Input("cameras_json", multiline=True, default="",
                                    tooltip="JSON text, or a .json file name (input folder) or path.")],
            outputs=[Cameras.Output(display_name="cameras", tooltip="The poses from the JSON.")],
        )

    @classmethod
    def execute(cls, cameras_json: str) -> io.NodeOutput:
        text = cameras_json.strip()
        if not text:
            raise VividZooError("cameras_json is empty: paste a camera JSON or give the name of a .json file")
        if text[0] in "[{":
            try:
                return io.NodeOutput(cameras_from_json(json.loads(text), source="cameras_json"))
            except json.JSONDecodeError as error:
                raise VividZooError(f"cameras_json is not valid JSON: {error}") from None
        path = text if os.path.isabs(text) else os.path.join(folder_paths.get_input_directory(), text)
        return io.NodeOutput(load_cameras(path))


class CameraPreview(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_CameraPreview",
            display_name="Vivid-ZOO Camera Preview",
            search_aliases=["orbit", "turntable", "cameras"],
            category="VividZoo/cameras",
            description="Draws the camera poses around the object (the cube), one colour per view; one image per "
                        "frame for a moving trajectory.",
            inputs=[
                Cameras.Input("cameras", tooltip="Camera poses to draw."),
                io.Int.Input("size", default=512, min=128, max=2048, step=64, tooltip="Image width and height."),
            ],
            outputs=[io.Image.Output(tooltip="The preview, one image per frame of the camera trajectory.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, cameras, size: int) -> io.NodeOutput:
        images = torch.from_numpy(np.stack([np.asarray(i, dtype=np.float32) / 255 for i in draw_rig(cameras, size)]))
        return io.NodeOutput(images, ui=ui.PreviewImage(images, animated=len(images) > 1, cls=cls))


NODES = [OrbitCameras, OrbitTrajectory, CamerasFromJSON, CameraPreview]

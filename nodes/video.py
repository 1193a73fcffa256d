"""Multi-view video output: grid + per-view videos saved with the workflow, view selection, grids.

IMAGE batches here are views x frames images in the pack's order (frame by frame, views innermost),
at any size, so upscaled or otherwise processed frames work too.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction

import folder_paths
import torch
from comfy.cli_args import args
from comfy_api.latest import InputImpl, Types, io, ui

from ..vividzoo_core.cameras import CameraRig, transforms_json
from ..vividzoo_core.errors import VividZooError
from ..vividzoo_core.layout import VideoLayout
from ..vividzoo_core.video import frame_name, rescue_folder, rescue_frames, views_to_grid, write_mp4
from .number_inputs import numbers_in_range
from .types import Cameras


def split_views(images: torch.Tensor, views: int) -> torch.Tensor:
    """IMAGE batch ``(F*V, H, W, C)`` -> ``(F, V, H, W, C)``, refusing a batch that is not whole frames."""
    if images.shape[0] % views:
        raise VividZooError(
            f"{images.shape[0]} images are not a whole number of frames of {views} views; set views to the "
            f"number of camera views the images were made with"
        )
    return VideoLayout(views, images.shape[0] // views).split(images)[0]


def _views_input() -> io.Int.Input:
    return io.Int.Input("views", default=4, min=1, max=16, tooltip="Camera views in the batch (as in the latent).")


class MultiViewVideoCombine(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_MultiViewVideoCombine",
            display_name="Multi-View Video Combine",
            category="VividZoo/video",
            description=(
                "Saves a multi-view video to ComfyUI's output folder: a grid video (views side by side, MP4), one "
                "MP4 per view, and an animated WebP preview that needs no ffmpeg, with the workflow embedded. "
                "Optionally the frames as PNG with cameras.json and a NeRF-style transforms.json for 4D "
                "reconstruction. Takes images of any size, e.g. after an upscaler."
            ),
            inputs=[
                io.Image.Input("images", tooltip="views x frames images, frame by frame (VAE Decode output)."),
                _views_input(),
                io.Float.Input("fps", default=8.0, min=1.0, max=120.0, step=1.0, tooltip="Frames per second."),
                io.String.Input("filename_prefix", default="VividZoo/video",
                                tooltip="File name prefix in the output folder; may contain subfolders."),
                io.Boolean.Input("save_view_videos", default=True, tooltip="Also save one MP4 per view."),
                io.Boolean.Input("save_frames", default=False,
                                 tooltip="Also save every frame as PNG (and transforms.json when cameras are given)."),
                Cameras.Input("cameras", optional=True,
                              tooltip="The cameras used; saves cameras.json (and transforms.json with the frames)."),
            ],
            outputs=[
                io.Image.Output(display_name="grid_frames", tooltip="One grid image per frame, for other video nodes."),
                io.Video.Output(display_name="grid_video", tooltip="The grid as ComfyUI's VIDEO (for Save Video)."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, fps=None) -> bool | str:
        return numbers_in_range(cls, fps=fps)

    @classmethod
    def execute(cls, images: torch.Tensor, views: int, fps: float, filename_prefix: str, save_view_videos: bool,
                save_frames: bool, cameras=None) -> io.NodeOutput:
        frames = split_views(images, views)
        rig = cameras.for_layout(VideoLayout(views, frames.shape[0])) if cameras is not None else None
        grid = views_to_grid(frames)
        try:
            preview = cls._save(frames, grid, rig, fps, filename_prefix, save_view_videos, save_frames)
        except Exception as error:  # any writer failure (OSError, PyAV, Pillow): keep the finished frames
            where = rescue_frames(frames, rescue_folder() / "frames.npz", rig, fps)
            raise VividZooError(f"could not save the video ({type(error).__name__}: {error}); {where}") from error
        video = InputImpl.VideoFromComponents(Types.VideoComponents(images=grid, frame_rate=Fraction(round(fps * 1000), 1000)))
        return io.NodeOutput(grid, video, ui=ui.SavedImages([preview], is_animated=True))

    @classmethod
    def _save(cls, frames: torch.Tensor, grid: torch.Tensor, rig: CameraRig | None, fps: float, filename_prefix: str,
              save_view_videos: bool, save_frames: bool) -> dict:
        preview = ui.ImageSaveHelper.save_animated_webp(grid, filename_prefix, io.FolderType.output, cls, fps,
                                                        False, 90, 4)
        folder = os.path.join(folder_paths.get_output_directory(), preview.get("subfolder", ""))
        base = os.path.join(folder, preview["filename"][: -len(".webp")])
        metadata = cls._metadata()
        write_mp4(base + "grid.mp4", iter(grid), fps, metadata=metadata)
        if save_view_videos:
            for v in range(frames.shape[1]):
                write_mp4(f"{base}view{v:02d}.mp4", iter(frames[:, v]), fps, metadata=metadata)
        if rig is not None:
            rig.save(base + "cameras.json")
        if save_frames:
            cls._save_frames(frames, base + "frames", rig)
        return preview

    @classmethod
    def _metadata(cls) -> dict[str, str]:
        if args.disable_metadata:
            return {}
        metadata = {"prompt": json.dumps(cls.hidden.prompt)} if cls.hidden.prompt is not None else {}
        for key, value in (cls.hidden.extra_pnginfo or {}).items():
            metadata[key] = json.dumps(value)
        return metadata

    @staticmethod
    def _save_frames(frames: torch.Tensor, folder: str, rig: CameraRig | None) -> None:
        from PIL import Image

        from ..vividzoo_core.video import to_uint8

        os.makedirs(os.path.join(folder, "frames"), exist_ok=True)
        for f in range(frames.shape[0]):
            for v in range(frames.shape[1]):
                Image.fromarray(to_uint8(frames[f, v, ..., :3])).save(os.path.join(folder, frame_name(f, v)))
        if rig is not None:
            data = transforms_json(rig, frames.shape[3], frames.shape[2], frame_name)
            with open(os.path.join(folder, "transforms.json"), "w") as handle:
                json.dump(data, handle, indent=1)


class SelectView(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_SelectView",
            display_name="Select View",
            category="VividZoo/video",
            description="The frames of one camera view out of a multi-view batch, in time order: ready for any "
                        "video node (Save Video, Video Combine, interpolators).",
            inputs=[
                io.Image.Input("images", tooltip="views x frames images, frame by frame."),
                _views_input(),
                io.Int.Input("view", default=0, min=0, max=15, tooltip="Which view, from 0."),
            ],
            outputs=[io.Image.Output(tooltip="The frames of that view.")],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, views: int, view: int) -> io.NodeOutput:
        if view >= views:
            raise VividZooError(f"view {view} does not exist in a batch of {views} views; choose 0 to {views - 1}")
        return io.NodeOutput(split_views(images, views)[:, view])


class ViewsToGrid(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_ViewsToGrid",
            display_name="Views To Grid",
            category="VividZoo/video",
            description="One image per frame with all views side by side (a near-square grid for more than 4).",
            inputs=[
                io.Image.Input("images", tooltip="views x frames images, frame by frame."),
                _views_input(),
                io.Int.Input("columns", default=0, min=0, max=16, tooltip="Views per row; 0 = automatic."),
            ],
            outputs=[io.Image.Output(tooltip="One grid image per frame.")],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, views: int, columns: int) -> io.NodeOutput:
        return io.NodeOutput(views_to_grid(split_views(images, views), columns or None))


NODES = [MultiViewVideoCombine, SelectView, ViewsToGrid]

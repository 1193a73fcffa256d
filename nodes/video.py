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
from PIL import Image

from ..vividzoo_core.errors import VividZooError
from ..vividzoo_core.layout import VideoLayout
from ..vividzoo_core.settings import FPS, VIEWS
from ..vividzoo_core.video import GRID_WEBP, MultiViewVideo, rescue_video, save_video_or_rescue, views_to_grid
from .inputs import numbers_in_range, setting_input, views_input
from .types import Cameras


def new_output_folder(filename_prefix: str, width: int = 1, height: int = 1) -> tuple[str, str]:
    """A new numbered folder ``<prefix>_00001_`` in the output folder (ComfyUI's counter; ``width`` and ``height``
    fill its ``%width%`` / ``%height%`` placeholders) and its subfolder relative to the output folder."""
    output = folder_paths.get_output_directory()
    parent, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, output, width, height)
    folder_name = f"{name}_{counter:05}_"
    return os.path.join(parent, folder_name), os.path.join(subfolder, folder_name)


def split_views(images: torch.Tensor, views: int) -> torch.Tensor:
    """IMAGE batch ``(F*V, H, W, C)`` -> ``(F, V, H, W, C)``, refusing a batch that is not whole frames."""
    if images.shape[0] % views:
        raise VividZooError(
            f"{images.shape[0]} images are not a whole number of frames of {views} views; set views to the "
            f"number of camera views the images were made with"
        )
    return VideoLayout(views, images.shape[0] // views).split(images)[0]


class MultiViewVideoCombine(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_MultiViewVideoCombine",
            display_name="Multi-View Video Combine",
            search_aliases=["multiview", "multi-view", "4D", "save video", "turntable"],
            category="VividZoo/video",
            description=(
                "Saves a multi-view video to ComfyUI's output folder: a grid video (views side by side, MP4), one "
                "MP4 per view, and an animated WebP preview that needs no ffmpeg, with the workflow embedded. "
                "Optionally the frames as PNG with cameras.json and a NeRF-style transforms.json for 4D "
                "reconstruction. Takes images of any size, e.g. after an upscaler."
            ),
            inputs=[
                io.Image.Input("images", tooltip="views x frames images, frame by frame (VAE Decode output)."),
                views_input(),
                setting_input(FPS),
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
        frames = split_views(images, views)[..., :3]
        rig = cameras.for_layout(VideoLayout(views, frames.shape[0])) if cameras is not None else None
        video = MultiViewVideo(frames, rig, fps)
        options = {"view_videos": save_view_videos, "frames": save_frames, "metadata": cls._metadata(),
                   "exif": cls._webp_exif()}
        try:
            folder, subfolder = new_output_folder(filename_prefix, frames.shape[3], frames.shape[2])
        except Exception as error:  # e.g. a prefix that leaves the output folder: still keep the finished video
            raise VividZooError(f"could not save the video ({error}); {rescue_video(video, **options)}") from error
        save_video_or_rescue(video, folder, **options)
        grid = views_to_grid(frames)
        grid_video = InputImpl.VideoFromComponents(
            Types.VideoComponents(images=grid, frame_rate=Fraction(round(fps * 1000), 1000)))
        preview = ui.SavedResult(GRID_WEBP, subfolder, io.FolderType.output)
        return io.NodeOutput(grid, grid_video, ui=ui.SavedImages([preview], is_animated=True))

    @classmethod
    def _metadata(cls) -> dict[str, str]:
        """The prompt and the workflow, as MP4 tags (what ComfyUI's own video saver embeds)."""
        if args.disable_metadata:
            return {}
        metadata = {"prompt": json.dumps(cls.hidden.prompt)} if cls.hidden.prompt is not None else {}
        for key, value in (cls.hidden.extra_pnginfo or {}).items():
            metadata[key] = json.dumps(value)
        return metadata

    @classmethod
    def _webp_exif(cls) -> Image.Exif | None:
        """The prompt and the workflow in the WebP's EXIF, where ComfyUI's animated WebP saver puts them."""
        if args.disable_metadata:
            return None
        exif = Image.Exif()
        if cls.hidden.prompt is not None:
            exif[0x0110] = f"prompt:{json.dumps(cls.hidden.prompt)}"  # EXIF Model
        for offset, (key, value) in enumerate((cls.hidden.extra_pnginfo or {}).items()):
            exif[0x010F - offset] = f"{key}:{json.dumps(value)}"  # EXIF Make, then the tags before it
        return exif


class SelectView(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_SelectView",
            display_name="Select View",
            search_aliases=["multiview", "multi-view", "one view"],
            category="VividZoo/video",
            description="The frames of one camera view out of a multi-view batch, in time order: ready for any "
                        "video node (Save Video, Video Combine, interpolators).",
            inputs=[
                io.Image.Input("images", tooltip="views x frames images, frame by frame."),
                views_input(),
                io.Int.Input("view", default=0, min=0, max=VIEWS.high - 1, tooltip="Which view, from 0."),
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
            search_aliases=["multiview", "multi-view", "grid"],
            category="VividZoo/video",
            description="One image per frame with all views side by side (a near-square grid for more than 4).",
            inputs=[
                io.Image.Input("images", tooltip="views x frames images, frame by frame."),
                views_input(),
                io.Int.Input("columns", default=0, min=0, max=VIEWS.high, tooltip="Views per row; 0 = automatic."),
            ],
            outputs=[io.Image.Output(tooltip="One grid image per frame.")],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, views: int, columns: int) -> io.NodeOutput:
        return io.NodeOutput(views_to_grid(split_views(images, views), columns or None))


NODES = [MultiViewVideoCombine, SelectView, ViewsToGrid]

"""The empty latent of a multi-view video: views x frames images in one batch."""

from __future__ import annotations

import logging

import comfy.model_management
import torch
from comfy_api.latest import io

from ..vividzoo_core.checkpoints.motion import POSITION_ENCODING_LENGTHS
from ..vividzoo_core.layout import VideoLayout
from ..vividzoo_core.memory import describe_estimate
from ..vividzoo_core.settings import FRAMES, HEIGHT, WIDTH
from .inputs import setting_input, views_input


class EmptyMultiViewVideoLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_EmptyMultiViewVideoLatent",
            display_name="Empty Multi-View Video Latent",
            search_aliases=["multiview", "multi-view", "4D", "video latent"],
            category="VividZoo/latent",
            description="An empty latent batch of views x frames images, in the pack's order: frame by frame, the "
            "views of a frame side by side (image f * views + v). The paper's setting is 4 views x 16 "
            "frames x 256 px (about 6.1 to 7.5 GB of GPU memory in fp16); memory grows with views x frames "
            "(per context window) x width x height, and the 'info' output estimates it.",
            inputs=[
                views_input("Camera views; must match the cameras."),
                setting_input(FRAMES),
                setting_input(WIDTH),
                setting_input(HEIGHT),
            ],
            outputs=[
                io.Latent.Output(tooltip="views x frames empty latents for a Vivid-ZOO MODEL."),
                io.String.Output(
                    display_name="info", tooltip="Image count and the GPU memory sampling needs (estimate)."
                ),
            ],
        )

    @classmethod
    def execute(cls, views: int, frames: int, width: int, height: int) -> io.NodeOutput:
        layout = VideoLayout(views, frames)
        samples = torch.zeros([layout.images, 4, height // 8, width // 8],
                              device=comfy.model_management.intermediate_device())
        window = POSITION_ENCODING_LENGTHS["v2"]  # frames denoised at once with the paper's motion module
        info = (f"{views} views x {frames} frames = {layout.images} images of {width}x{height}; sampling needs about "
                f"{describe_estimate(views, min(frames, window), width, height)} of GPU memory in fp16 (estimate"
                f"{f'; {window}-frame context windows' if frames > window else ''})")
        logging.info("Vivid-ZOO: %s", info)
        return io.NodeOutput({"samples": samples}, info)


NODES = [EmptyMultiViewVideoLatent]

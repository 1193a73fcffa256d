"""Apply Vivid-ZOO: MVDream MODEL + motion module + alignment + cameras -> a multi-view video MODEL; and the
MVDream MODEL's cameras for multi-view images."""

from __future__ import annotations

from comfy_api.latest import io

from ..vividzoo_core.settings import BETA_SCHEDULE
from .inputs import setting_input
from .patching import patch_vividzoo
from .types import Alignment, Cameras, MotionModule


def video_model_inputs() -> list:
    """The MVDream MODEL, motion module and cameras every Vivid-ZOO sampling node starts from."""
    return [
        io.Model.Input("model", tooltip="MODEL from 'Vivid-ZOO MVDream Checkpoint Loader' (LoRAs allowed)."),
        MotionModule.Input("motion_module", tooltip="From 'Vivid-ZOO Motion Module Loader'."),
        Cameras.Input("cameras", tooltip="Camera poses; their view count must match the latent's views."),
    ]


def alignment_input() -> io.Input:
    return Alignment.Input("alignment", optional=True,
                           tooltip="From 'Vivid-ZOO Alignment Loader'; unconnected: training-free.")


class ApplyVividZoo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_ApplyVividZoo",
            display_name="Apply Vivid-ZOO",
            search_aliases=["AnimateDiff", "MVDream", "multiview", "multi-view", "4D"],
            category="VividZoo",
            description=(
                "Turns the MVDream MODEL into a multi-view video MODEL: adds the motion modules, the alignment "
                "layers (or none: training-free) and your cameras, through ComfyUI's patch hooks. Sample it with "
                "the stock KSampler, KSamplerAdvanced or SamplerCustom on an 'Empty Multi-View Video Latent'; "
                "LoRA loaders for SD 1.5 work before or after it. For videos longer than the motion module's "
                "limit use 'Vivid-ZOO Sampler' (context windows)."
            ),
            inputs=[*video_model_inputs(), setting_input(BETA_SCHEDULE), alignment_input()],
            outputs=[io.Model.Output(tooltip="The multi-view video MODEL.")],
        )

    @classmethod
    def execute(cls, model, motion_module, cameras, beta_schedule: str, alignment=None) -> io.NodeOutput:
        return io.NodeOutput(patch_vividzoo(model, cameras, motion_module, alignment, beta_schedule))


class MVDreamCameras(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VividZoo_MVDreamCameras",
            display_name="Vivid-ZOO MVDream Cameras",
            search_aliases=["MVDream", "multiview", "multi-view", "Animate3D", "orbit"],
            category="VividZoo",
            description=(
                "Sets the cameras of the MVDream MODEL for multi-view images (no motion): a stock KSampler on a batch "
                "of views latents then makes one image per camera. For the 4 condition views of 'Animate3D Condition' "
                "use 'Vivid-ZOO Orbit Cameras' with 4 views, elevation 15, azimuth_start 90 (Animate3D's setup)."
            ),
            inputs=[
                io.Model.Input("model", tooltip="MODEL from 'Vivid-ZOO MVDream Checkpoint Loader'."),
                Cameras.Input("cameras", tooltip="One camera per image of the batch (a static ring)."),
            ],
            outputs=[io.Model.Output(tooltip="The MVDream MODEL with these cameras.")],
        )

    @classmethod
    def execute(cls, model, cameras) -> io.NodeOutput:
        return io.NodeOutput(patch_vividzoo(model, cameras))


NODES = [ApplyVividZoo, MVDreamCameras]

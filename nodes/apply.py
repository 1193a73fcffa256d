"""Apply Vivid-ZOO: MVDream MODEL + motion module + alignment + cameras -> a multi-view video MODEL."""

from __future__ import annotations

from comfy_api.latest import io

from ..vividzoo_core.schedules import BETA_SCHEDULES, PAPER_BETA_SCHEDULE
from .patching import patch_vividzoo
from .types import Alignment, Cameras, MotionModule

BETA_SCHEDULE_TOOLTIP = (
    "Noise schedule, in diffusers' names: linear = the Vivid-ZOO paper's and AnimateDiff's (ComfyUI calls it "
    "sqrt_linear); scaled_linear = MVDream's and SD 1.5's own (ComfyUI's linear)."
)


def beta_schedule_input() -> io.Combo.Input:
    return io.Combo.Input("beta_schedule", options=list(BETA_SCHEDULES), default=PAPER_BETA_SCHEDULE,
                          tooltip=BETA_SCHEDULE_TOOLTIP)


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
            category="VividZoo",
            description=(
                "Turns the MVDream MODEL into a multi-view video MODEL: adds the motion modules, the alignment "
                "layers (or none: training-free) and your cameras, through ComfyUI's patch hooks. Sample it with "
                "the stock KSampler, KSamplerAdvanced or SamplerCustom on an 'Empty Multi-View Video Latent'; "
                "LoRA loaders for SD 1.5 work before or after it. For videos longer than the motion module's "
                "limit use 'Vivid-ZOO Sampler' (context windows)."
            ),
            inputs=[*video_model_inputs(), beta_schedule_input(), alignment_input()],
            outputs=[io.Model.Output(tooltip="The multi-view video MODEL.")],
        )

    @classmethod
    def execute(cls, model, motion_module, cameras, beta_schedule: str, alignment=None) -> io.NodeOutput:
        return io.NodeOutput(patch_vividzoo(model, cameras, motion_module, alignment, beta_schedule))


NODES = [ApplyVividZoo]

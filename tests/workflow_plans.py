"""The plan of each shipped workflow: its stages (titled groups, in columns) and what its note says.

``tests/test_workflow_files.py`` checks that every ``workflows/*.json`` has a plan here and is laid out
from it; ``VIVIDZOO_UPDATE_LAYOUT=1 pytest tests/comfyui/test_browser.py`` rewrites the files from the plans
(with the node sizes the frontend draws). See docs/CONTRIBUTING.md, "Workflows".

A plan's ``columns`` run left to right; each holds groups stacked top to bottom; a group is a title and
its own columns of node ids, stacked top to bottom. The note's file list, memory and download links come
from the workflow itself (the loaders' ``models`` and the size widgets), not from the plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workflow_schema import REPO, widget_values

from vividzoo_core.animate3d_pipeline import VIEWS as ANIMATE3D_VIEWS
from vividzoo_core.checkpoints.motion import POSITION_ENCODING_LENGTHS
from vividzoo_core.memory import describe_estimate, reconstruction_estimate_gb
from vividzoo_core.settings import GenerationSettings

Group = tuple[str, list[list[int]]]


@dataclass(frozen=True)
class Plan:
    title: str
    about: str
    columns: list[list[Group]]
    change: list[str]
    """Settings worth changing first, one line each."""
    needs: str = ""
    """Files the loaders' downloads do not cover (your own images, an alignment file)."""
    model: str = "vividzoo"
    """The model family sampled: ``vividzoo_core.memory.MODEL_COSTS``'s key."""


LOAD, CAMERAS, SIZE, PROMPTS = "Load models", "Cameras", "Video size", "Prompts"
SAMPLE, SAVE = "Sample", "Decode and save"
VIVIDZOO_INPUTS = [(LOAD, [[1, 4, 5]]), (CAMERAS, [[6]]), (SIZE, [[7]])]
PROMPT_GROUP = [(PROMPTS, [[2, 3]])]
VIVIDZOO_CHANGE = [
    "**Prompt**: one object doing one thing; keep the negative prompt empty, as the paper does.",
    "**seed** (*control after generate*: `fixed` repeats a video, `randomize` gives a new one each run).",
    "**Video size**: views x frames x width x height sets the memory; 4 views, 16 frames, 256 px is the paper's.",
    "**steps** (50, the paper's): fewer is faster and rougher.",
    "**Alignment Loader**: `none (training-free)` until you have trained alignment layers (`vividzoo train`).",
]

GAUSSIANS = "3D Gaussians per frame (LGM)"
RECONSTRUCTION_CHANGE = [
    "**score** (Multi-View Video to Gaussians): renders every frame at the 4 cameras to score it; turn it off "
    "on a CPU for long videos.",
    "**preview** (Save Gaussian Sequence): the turntable video; the PLYs are written either way.",
]

PLANS = {
    "vividzoo_text_to_multiview_video": Plan(
        "Text to multi-view video (Vivid-ZOO)",
        "MVDream makes the views, AnimateDiff's motion modules make them move: one prompt becomes a video seen "
        "from 4 cameras around the object, all views sampled together so they agree.",
        [VIVIDZOO_INPUTS, PROMPT_GROUP, [(SAMPLE, [[8]])], [(SAVE, [[9, 10]])]],
        VIVIDZOO_CHANGE),
    "vividzoo_multiview_video_upscaled": Plan(
        "Multi-view video, upscaled",
        "Text to multi-view video as in the basic workflow, then every decoded frame upscaled before the videos "
        "are written. Swap the upscale node for *Upscale Image (using Model)* with an ESRGAN model for sharper "
        "frames.",
        [VIVIDZOO_INPUTS, PROMPT_GROUP, [(SAMPLE, [[8]])], [("Decode, upscale and save", [[9, 11], [10]])]],
        ["**Upscale**: `scale_by` 2 gives 512 px from 256 px; upscaling costs no GPU memory to speak of.",
         *VIVIDZOO_CHANGE]),
    "vividzoo_long_video_context_windows": Plan(
        "A long multi-view video (context windows)",
        "48 frames, more than the motion module sees at once: the sampler denoises overlapping windows of 16 "
        "frames and blends them, so memory stays that of 16 frames.",
        [VIVIDZOO_INPUTS, PROMPT_GROUP, [(SAMPLE, [[8]])], [(SAVE, [[9, 10]])]],
        ["**frames** (Empty Multi-View Video Latent): any length; time grows with it.",
         "**context_frames** (16) and **context_overlap** (4): longer windows move more coherently and need "
         "more memory.", *VIVIDZOO_CHANGE[:2]]),
    "vividzoo_training_free_vs_aligned": Plan(
        "Training-free vs aligned, side by side",
        "The same prompt, seed and cameras sampled twice with the stock KSampler: once training-free, once with "
        "your trained alignment layers, to compare.",
        [[(LOAD, [[1, 4, 5, 12]]), (CAMERAS, [[6]]), (SIZE, [[7]])], PROMPT_GROUP,
         [("Training-free: sample and save", [[20], [21], [22, 23]]),
          ("Aligned: sample and save", [[30], [31], [32, 33]])]],
        ["**Alignment (train your own)**: pick your trained file.", *VIVIDZOO_CHANGE[:4]],
        needs="an alignment file of your own in `ComfyUI/models/vividzoo/` (made by `vividzoo train`; none is "
              "published yet), shipped as `vividzoo_alignment_v2.safetensors`"),
    "vividzoo_turntable_orbit": Plan(
        "Turntable: cameras orbiting a moving object",
        "The cameras turn around the object while it moves (Orbit Trajectory), sampled by the stock KSampler "
        "through *Apply Vivid-ZOO*; the camera preview draws the path.",
        [[(LOAD, [[1, 4, 5]]), (CAMERAS, [[6]]), (SIZE, [[7]])],
         [(PROMPTS, [[2, 3]]), ("Camera preview", [[13]])],
         [(SAMPLE, [[14], [8]])], [(SAVE, [[9, 10]])]],
        ["**Orbit Trajectory**: `turn` degrees over the clip (360: one full turn), elevation at start and end.",
         *VIVIDZOO_CHANGE[:4]]),
    "vividzoo_animate3d_text_to_multiview_video": Plan(
        "Text to multi-view video with Animate3D",
        "MVDream makes 4 views of an object from the object prompt; Animate3D animates them from the motion "
        "prompt. Every file is a released, trained weight.",
        [[(LOAD, [[1, 10]]), (CAMERAS, [[4]]), ("Size of the views", [[6]])],
         [(PROMPTS, [[2, 13, 3]])],
         [("1. MVDream: the 4 views", [[5], [7]])],
         [("The views", [[8, 9]]), ("2. Animate3D: condition", [[11, 12]])],
         [("Animate3D: sample", [[14]]), (SAVE, [[15, 16]])]],
        ["**Object prompt** and **Motion prompt**: what the object is, and what it does.",
         "**frames** (Animate3D Condition, 16) and **width**/**height**: set the memory and time.",
         "**free_init_iterations** (3, Animate3D's): 1 is three times faster, less coherent.",
         "**seed** of either sampler: new views, or new motion for the same views."],
        model="animate3d"),
    "vividzoo_text_to_4d_gaussians": Plan(
        "Text to 4D Gaussians (Vivid-ZOO, then LGM)",
        "Text to multi-view video as in the basic workflow, then LGM turns each frame's 4 views into 3D Gaussians: "
        "one standard 3DGS PLY per frame (SuperSplat, gsplat, Load 3D), a manifest and a turntable video, with "
        "each frame's reconstruction score.",
        [VIVIDZOO_INPUTS, PROMPT_GROUP, [(SAMPLE, [[8]])], [(SAVE, [[9, 10]])],
         [(GAUSSIANS, [[12, 13], [14]])]],
        [*RECONSTRUCTION_CHANGE, *VIVIDZOO_CHANGE[:3]]),
    "vividzoo_animate3d_to_l4gm": Plan(
        "Text to 4D Gaussians with released weights only (MVDream, Animate3D, L4GM)",
        "MVDream makes 4 views from the object prompt, Animate3D animates them from the motion prompt, and L4GM "
        "turns the video into a temporally consistent sequence of 3D Gaussians, 3x the frames with its "
        "interpolation model.",
        [[(LOAD, [[1, 10]]), (CAMERAS, [[4]]), ("Size of the views", [[6]]), ("L4GM files", [[18, 19]])],
         [(PROMPTS, [[2, 13, 3]])],
         [("1. MVDream: the 4 views", [[5], [7]])],
         [("The views", [[8]]), ("2. Animate3D: condition", [[11, 12]]), ("Animate3D: sample", [[14]])],
         [(SAVE, [[15, 16]]), ("3. L4GM: 4D Gaussians", [[20, 21]])]],
        [*RECONSTRUCTION_CHANGE,
         "**moving_views** (off): L4GM was trained on view 0 moving and views 1-3 still; on feeds all 4 moving "
         "views, outside its training.",
         "**Object prompt** and **Motion prompt**: what the object is, and what it does.",
         "**frames** (Animate3D Condition, 16): more frames run L4GM in successive 16-frame windows."],
        model="animate3d"),
    "vividzoo_animate3d_four_views": Plan(
        "Animate 4 views of your object (Animate3D)",
        "Four pictures of your object (front, left, back, right, at elevation 15) become a multi-view video "
        "of it moving as the motion prompt says.",
        [[(LOAD, [[1, 9]]), ("Your 4 views", [[4, 6], [5, 7]])],
         [(PROMPTS, [[2, 3]]), ("Cameras of the views", [[14]])],
         [("Animate3D: condition and sample", [[8, 10, 11], [12]])],
         [(SAVE, [[13, 15]])]],
        ["**The 4 Load Image nodes**: your views, square, all the same size, from Animate3D's cameras.",
         "**Motion prompt**: what the object does.",
         "**frames** (Animate3D Condition, 16) and **width**/**height**: set the memory and time.",
         "**free_init_iterations** (3, Animate3D's): 1 is three times faster, less coherent."],
        needs="your 4 views in `ComfyUI/input/` (the shipped names are `animate3d_front.png`, `animate3d_left.png`, "
              "`animate3d_back.png`, `animate3d_right.png`)",
        model="animate3d"),
}


def note_text(workflow: dict, plan: Plan, schemas: dict) -> str:
    """The Markdown note: what the workflow does, the files and their folders with links, the memory it
    needs (vividzoo_core.memory's estimate at the workflow's size) and the settings worth changing first."""
    files = [model for node in workflow["nodes"] for model in node.get("properties", {}).get("models", [])]
    lines = [f"## {plan.title}", "", plan.about, "", "### Files", ""]
    lines += [f"- [{m['name']}]({m['url']}) in `ComfyUI/models/{m['directory']}/`" for m in files]
    lines += [f"- {plan.needs}"] if plan.needs else []
    lines += ["", "The *Missing Models* dialog offers the downloads when a file is not there.", "", "### Memory", "",
              memory_line(workflow, plan, schemas), "", "### Worth changing", ""]
    lines += [f"- {line}" for line in plan.change]
    lines += ["", f"More: [the pack's ComfyUI page]({repository()}/blob/main/docs/comfyui.md)."]
    return "\n".join(lines)


def memory_line(workflow: dict, plan: Plan, schemas: dict) -> str:
    values = {}
    for node in workflow["nodes"]:
        if node["type"] in schemas:
            values.update({(node["type"], k): v for k, v in widget_values(node, schemas[node["type"]]).items()})
    if ("VividZoo_EmptyMultiViewVideoLatent", "views") in values:
        views, frames, width, height = (values["VividZoo_EmptyMultiViewVideoLatent", k]
                                        for k in ("views", "frames", "width", "height"))
    else:
        views = ANIMATE3D_VIEWS
        frames, width, height = (values["VividZoo_Animate3DCondition", k] for k in ("frames", "width", "height"))
    settings = GenerationSettings("", frames=frames, context_frames=values.get(("VividZoo_Sampler", "context_frames")))
    at_once = settings.window_frames(POSITION_ENCODING_LENGTHS["v2"])
    windows = f", in windows of {at_once} frames" if at_once < frames else ""
    line = (f"About {describe_estimate(views, at_once, width, height, model=plan.model)} of GPU memory in fp16 for "
            f"{views} views x {frames} frames x {width}x{height} px{windows} (the pack's estimate; GPU time not "
            "measured yet). On a CPU a step takes minutes: try fewer frames, steps or pixels first.")
    return line + reconstruction_memory(workflow, values)


def reconstruction_memory(workflow: dict, values: dict) -> str:
    """The reconstruction's own estimate, when the workflow has one (it runs after the video model, not beside it)."""
    size = values.get(("VividZoo_MultiViewVideoToGaussians", "input_size"))
    if size is None:
        return ""
    models = [node["widgets_values"][0] for node in workflow["nodes"]
              if node["type"] == "VividZoo_ReconstructionModelLoader"]
    kind = "l4gm" if any("recon" in model for model in models) else "lgm"
    interpolation = any("interp" in model for model in models)
    low, high = reconstruction_estimate_gb(kind, 16 if kind == "l4gm" else 1, size, interpolation)
    return (f" Then {'L4GM' if kind == 'l4gm' else 'LGM'}{' with its interpolation model' if interpolation else ''}: "
            f"about {low:.1f} to {high:.1f} GB (estimate).")


def repository() -> str:
    """The project's address, as pyproject.toml's [project.urls] gives it (no tomllib on Python 3.10)."""
    return re.search(r'^Repository = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.M).group(1)

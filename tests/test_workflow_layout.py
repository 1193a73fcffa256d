"""Shipped workflows' layout, offline: each is laid out from its plan, keeps the layout rules as stored, and its
note says the right files, folders and memory. The rules on the sizes the frontend draws: tests/comfyui/test_browser.py.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
from workflow_layout import (
    GROUP_TITLE_HEIGHT,
    MIN_GAP,
    PANEL,
    Geometry,
    lay_out,
    layout_problems,
    stored_boxes,
)
from workflow_plans import PLANS, note_text
from workflow_schema import NOTE_TYPES, SNAPSHOT, WORKFLOWS, load, shipped_workflows

SCHEMAS = json.loads(SNAPSHOT.read_text())


@pytest.mark.parametrize("path", shipped_workflows(), ids=lambda p: p.stem)
def test_workflow_is_laid_out_from_its_plan(path):
    workflow = load(path)
    assert path.stem in PLANS, f"{path.name} has no plan: add one to tests/workflow_plans.py (docs/CONTRIBUTING.md)"
    plan = PLANS[path.stem]
    again = lay_out(copy.deepcopy(workflow), plan.columns, note_text(workflow, plan, SCHEMAS))
    assert again == workflow, f"{path.name} is not as its plan lays it out: VIVIDZOO_UPDATE_LAYOUT=1 (CONTRIBUTING.md)"


@pytest.mark.parametrize("path", shipped_workflows(), ids=lambda p: p.stem)
def test_stored_layout_keeps_the_rules(path):
    workflow = load(path)
    assert layout_problems(stored_boxes(workflow)) == []
    notes = [n for n in workflow["nodes"] if n["type"] in NOTE_TYPES]
    assert [n["type"] for n in notes] == ["MarkdownNote"]
    boxes = stored_boxes(workflow)
    note = boxes.nodes[notes[0]["id"]]
    everything = [*boxes.nodes.values(), *boxes.groups.values()]
    assert (note[0], note[1]) == (min(b[0] for b in everything), min(b[1] for b in everything))  # top-left


# (workflow, what its note must say): files with folders and links, and the memory of the shipped size as the docs
# and the latent node's description state it (4 views x 16 frames x 256 px: 6.1 to 7.5 GB).
NOTE_FACTS = {
    "vividzoo_text_to_multiview_video": [
        "[sd-v1.5-4view.pt](https://huggingface.co/MVDream/MVDream/resolve/main/sd-v1.5-4view.pt?download=true) in "
        "`ComfyUI/models/vividzoo/`",
        "[mm_sd_v15_v2.ckpt](https://huggingface.co/guoyww/animatediff/resolve/main/mm_sd_v15_v2.ckpt?download=true) "
        "in `ComfyUI/models/animatediff_models/`",
        "About 6.1 to 7.5 GB of GPU memory in fp16 for 4 views x 16 frames x 256x256 px (",
    ],
    # 48 frames sampled 16 at a time need the memory of 16
    "vividzoo_long_video_context_windows": [
        "About 6.1 to 7.5 GB of GPU memory in fp16 for 4 views x 48 frames x 256x256 px, in windows of 16 frames"],
    "vividzoo_animate3d_four_views": [
        "in `ComfyUI/models/ipadapter/`", "in `ComfyUI/models/clip_vision/`", "`animate3d_front.png`",
        "for 4 views x 16 frames x 256x256 px ("],
}


@pytest.mark.parametrize("name", NOTE_FACTS)
def test_note_names_files_folders_and_memory(name):
    note = next(n for n in load(WORKFLOWS / f"{name}.json")["nodes"] if n["type"] == "MarkdownNote")
    for fact in NOTE_FACTS[name]:
        assert fact in note["widgets_values"][0]


def test_animate3d_notes_use_animate3ds_memory():
    """Animate3D's UNet and image encoder weigh more than Vivid-ZOO's network: same size, more memory."""
    def memory(name):
        note = next(n for n in load(WORKFLOWS / f"{name}.json")["nodes"] if n["type"] == "MarkdownNote")
        return next(line for line in note["widgets_values"][0].splitlines() if line.startswith("About "))

    vividzoo, animate3d = memory("vividzoo_text_to_multiview_video"), memory("vividzoo_animate3d_four_views")
    assert vividzoo.split(" of GPU")[0] < animate3d.split(" of GPU")[0]


# A geometry keeping every rule, and one break of each rule.
GOOD = Geometry(
    nodes={1: (0, 0, 30, 300), 2: (60, 40, 200, 100), 3: (60, 180, 200, 100), 4: (340, 40, 200, 100)},
    titles={1: "note", 2: "loader", 3: "prompt", 4: "sampler"}, notes={1},
    groups={"Load": (40, -GROUP_TITLE_HEIGHT, 240, 330), "Sample": (320, -GROUP_TITLE_HEIGHT, 240, 200)},
    links=[(2, 4), (2, 3)], scale=1.0, offset=(PANEL[0] + 10, PANEL[1] + 50))
BREAKS = {
    "on another": ({"nodes": {**GOOD.nodes, 3: (60, 40 + 100 + MIN_GAP - 1, 200, 100)}}, "closer than"),
    "out of its group": ({"nodes": {**GOOD.nodes, 3: (60, 180, 200, 160)}}, "sticks out of its group 'Load'"),
    "over the group title": ({"nodes": {**GOOD.nodes, 2: (60, -10, 200, 100)}}, "sticks out of its group 'Load'"),
    "in no group": ({"groups": {"Load": GOOD.groups["Load"]}}, "node 4 ('sampler') is in no group"),
    "groups overlapping": ({"groups": {**GOOD.groups, "Sample": (270, -GROUP_TITLE_HEIGHT, 290, 200)}},
                           "groups 'Load' and 'Sample' overlap"),
    "link backwards": ({"links": [(4, 2)]}, "runs right to left"),
    "out of view": ({"scale": 5.0}, "is not in full view"),
    "under the side bar": ({"offset": (PANEL[0] - 10, PANEL[1] + 50)}, "node 1 ('note') is not in full view"),
    "under the minimap": ({"covers": ((PANEL[0] + 400, PANEL[1] + 100, 50, 50),)}, "node 4 ('sampler') is not in"),
}


def test_the_good_geometry_keeps_the_rules():
    assert layout_problems(GOOD) == []


@pytest.mark.parametrize("name", BREAKS)
def test_each_rule_catches_its_break(name):
    change, message = BREAKS[name]
    problems = layout_problems(replace(GOOD, **change))
    assert problems and all(message in p for p in problems[:1]), problems


def test_a_workflow_without_a_node_in_its_plan_is_refused():
    workflow = load(WORKFLOWS / "vividzoo_text_to_multiview_video.json")
    plan = PLANS["vividzoo_text_to_multiview_video"]
    with pytest.raises(ValueError, match="the plan places nodes"):
        lay_out(workflow, plan.columns[:-1], "")

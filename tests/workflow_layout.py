"""How a shipped workflow sits on the canvas: the rules it must keep, and the layout that keeps them.

The rules (:func:`layout_problems`) take node and group rectangles, either as the frontend draws them
(tests/comfyui/test_browser.py reads them from LiteGraph) or as the file stores them (:func:`stored_boxes`):
no two nodes closer than ``MIN_GAP``, every node but a note inside one group and below its title, groups
apart, no link running right to left, and everything visible in the 1920x1080 window at the zoom the
workflow opens with (``extra.ds``), out from under the frontend's side bar, tabs, run bar and minimap.

The layout (:func:`lay_out`) places nodes from a plan (tests/workflow_plans.py): columns of titled groups,
each group columns of stacked nodes, a Markdown note at the top-left, and the zoom that shows it all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workflow_schema import NOTE_TYPES

NODE_TITLE_HEIGHT = 30  # LiteGraph.NODE_TITLE_HEIGHT: a node's title bar sits above its pos
GROUP_FONT_SIZE = 24
GROUP_TITLE_HEIGHT = 1.4 * GROUP_FONT_SIZE  # LGraphGroup.titleHeight in ComfyUI's frontend 1.37
GROUP_COLOR = "#3f789e"  # the blue of ComfyUI's own templates' groups
MIN_GAP = 10  # canvas units between any two nodes, so no widget touches the next node's title
GAP = 40  # what the layout leaves between nodes, and between groups: room for a title a few px wider
PADDING = 20  # between a group's edge and its nodes
# The 1920x1080 window of ComfyUI's frontend 1.37 (.graph-canvas-panel: the canvas not under the side
# bar and the tabs), and what floats over it when a workflow opens: the run bar and the minimap.
WINDOW = (1920, 1080)
PANEL = (63, 90, 1853, 986)
COVERS = ((1602, 47, 225, 38), (1663, 822, 253, 200))
MIN_SCALE = 0.6  # LiteGraph draws nodes without their text below this zoom (LGraphCanvas.low_quality)
MARGIN = 20  # screen pixels the layout keeps clear of the panel's edges and the covers

Box = tuple[float, float, float, float]  # x, y, width, height


@dataclass
class Geometry:
    """A workflow on the canvas: node boxes (title included) by id, group boxes by title, and the zoom."""

    nodes: dict[int, Box]
    titles: dict[int, str]
    notes: set[int]
    groups: dict[str, Box]
    links: list[tuple[int, int]]
    scale: float
    offset: tuple[float, float]
    panel: Box = PANEL
    covers: tuple[Box, ...] = COVERS


def overlap(a: Box, b: Box, gap: float = 0) -> bool:
    """Whether ``a`` and ``b`` come closer than ``gap`` (touching edges do not overlap at gap 0)."""
    return a[0] < b[0] + b[2] + gap and b[0] < a[0] + a[2] + gap and a[1] < b[1] + b[3] + gap and \
        b[1] < a[1] + a[3] + gap


def inside(inner: Box, outer: Box) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[0] + inner[2] <= outer[0] + outer[2] and \
        inner[1] + inner[3] <= outer[1] + outer[3]


def on_screen(box: Box, scale: float, offset: tuple[float, float]) -> Box:
    """A canvas box in window pixels (LiteGraph's DragAndScale: ``(pos + offset) * scale``)."""
    return ((box[0] + offset[0]) * scale, (box[1] + offset[1]) * scale, box[2] * scale, box[3] * scale)


def stored_boxes(workflow: dict[str, Any]) -> Geometry:
    """The workflow as its file stores it: a node's box is its pos and size plus the title bar above."""
    nodes = {n["id"]: (n["pos"][0], n["pos"][1] - NODE_TITLE_HEIGHT, n["size"][0], n["size"][1] + NODE_TITLE_HEIGHT)
             for n in workflow["nodes"]}
    ds = workflow["extra"]["ds"]
    return Geometry(
        nodes=nodes, titles={n["id"]: n.get("title") or n["type"] for n in workflow["nodes"]},
        notes={n["id"] for n in workflow["nodes"] if n["type"] in NOTE_TYPES},
        groups={g["title"]: tuple(g["bounding"]) for g in workflow["groups"]},
        links=[(link[1], link[3]) for link in workflow["links"]], scale=ds["scale"], offset=tuple(ds["offset"]))


def layout_problems(geometry: Geometry) -> list[str]:
    """Every way ``geometry`` breaks the rules, one line each (empty when it keeps them all)."""
    g = geometry
    name = {i: f"node {i} ({g.titles[i]!r})" for i in g.nodes}
    problems = []
    ids = sorted(g.nodes)
    for k, a in enumerate(ids):
        for b in ids[k + 1:]:
            if overlap(g.nodes[a], g.nodes[b], MIN_GAP):
                problems.append(f"{name[a]} and {name[b]} overlap or are closer than {MIN_GAP}: "
                                f"{g.nodes[a]} {g.nodes[b]}")
    titles = sorted(g.groups)
    for k, a in enumerate(titles):
        for b in titles[k + 1:]:
            if overlap(g.groups[a], g.groups[b]):
                problems.append(f"groups {a!r} and {b!r} overlap")
    for i, box in g.nodes.items():
        if i in g.notes:
            continue
        centre = (box[0] + box[2] / 2, box[1] + box[3] / 2, 0, 0)
        homes = [t for t, group in g.groups.items() if inside(centre, group)]
        if not homes:
            problems.append(f"{name[i]} is in no group")
        for t in homes:
            x, y, w, h = g.groups[t]
            if not inside(box, (x, y + GROUP_TITLE_HEIGHT, w, h - GROUP_TITLE_HEIGHT)):
                problems.append(f"{name[i]} sticks out of its group {t!r} (or covers its title): {box} {g.groups[t]}")
    for source, target in g.links:
        if g.nodes[target][0] < g.nodes[source][0]:
            problems.append(f"the link {name[source]} -> {name[target]} runs right to left")
    labelled = [*((name[i], b) for i, b in g.nodes.items()), *((f"group {t!r}", b) for t, b in g.groups.items())]
    for label, box in labelled:
        shown = on_screen(box, g.scale, g.offset)
        if not inside(shown, g.panel) or any(overlap(shown, cover) for cover in g.covers):
            problems.append(f"{label} is not in full view at the zoom the workflow opens with: at {shown} in the "
                            f"{WINDOW[0]}x{WINDOW[1]} window, the free canvas is {g.panel}, covered at {g.covers}")
    return problems


NOTE_WIDTH = 460
NOTE_MIN_HEIGHT = 640
NOTE_COLORS = {"color": "#432", "bgcolor": "#000"}  # the brown of ComfyUI's own templates' notes


def lay_out(workflow: dict[str, Any], columns: list[list[tuple[str, list[list[int]]]]], note: str) -> dict[str, Any]:
    """``workflow`` with its nodes placed as ``columns`` say (see tests/workflow_plans.py), groups around
    them, the Markdown ``note`` at the top-left and the zoom that shows it all. Node sizes are kept."""
    nodes = {n["id"]: n for n in workflow["nodes"] if n["type"] not in NOTE_TYPES}
    planned = [i for column in columns for _, stacks in column for stack in stacks for i in stack]
    if sorted(planned) != sorted(nodes):
        raise ValueError(f"the plan places nodes {sorted(planned)}, the workflow has {sorted(nodes)}")
    groups, x, bottom = [], NOTE_WIDTH + GAP, 0.0
    for column in columns:
        y, width = 0.0, 0.0
        for title, stacks in column:
            sx, height = x + PADDING, 0.0
            for stack in stacks:
                sy = y + GROUP_TITLE_HEIGHT + PADDING
                for i in stack:
                    nodes[i]["pos"] = [sx, sy + NODE_TITLE_HEIGHT]
                    sy += NODE_TITLE_HEIGHT + nodes[i]["size"][1] + GAP
                sx += max(nodes[i]["size"][0] for i in stack) + GAP
                height = max(height, sy - GAP + PADDING - y)
            groups.append({"id": len(groups) + 1, "title": title, "bounding": [x, y, sx - GAP + PADDING - x, height],
                           "color": GROUP_COLOR, "font_size": GROUP_FONT_SIZE, "flags": {}})
            width = max(width, sx - GAP + PADDING - x)
            y += height + GAP
        x += width + GAP
        bottom = max(bottom, y - GAP)
    notes = [n for n in workflow["nodes"] if n["type"] == "MarkdownNote"]
    if not notes:
        workflow["last_node_id"] += 1
        notes = [{"id": workflow["last_node_id"], "type": "MarkdownNote", "flags": {}, "order": len(nodes),
                  "mode": 0, "inputs": [], "outputs": [], "properties": {}, **NOTE_COLORS}]
        workflow["nodes"].append(notes[0])
    notes[0].update(pos=[0, NODE_TITLE_HEIGHT], size=[NOTE_WIDTH, max(NOTE_MIN_HEIGHT, bottom - NODE_TITLE_HEIGHT)],
                    widgets_values=[note])
    workflow["groups"] = groups
    workflow["extra"]["ds"] = fit_view(stored_boxes(workflow))
    return workflow


def fit_view(geometry: Geometry) -> dict[str, Any]:
    """The largest zoom (at most 1, in steps of 0.01, at least ``MIN_SCALE``) showing every node and group clear
    of the panel's edges and the covers, centred across the panel when that stays clear."""
    boxes = [*geometry.nodes.values(), *geometry.groups.values()]
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right = max(b[0] + b[2] for b in boxes)
    room = (PANEL[0] + MARGIN, PANEL[1] + MARGIN, PANEL[2] - 2 * MARGIN, PANEL[3] - 2 * MARGIN)
    covers = [(x - MARGIN, y - MARGIN, w + 2 * MARGIN, h + 2 * MARGIN) for x, y, w, h in COVERS]

    def clear(scale: float, offset: tuple[float, float]) -> bool:
        shown = [on_screen(b, scale, offset) for b in boxes]
        return all(inside(s, room) and not any(overlap(s, c) for c in covers) for s in shown)

    for step in range(100, round(MIN_SCALE * 100) - 1, -1):
        scale = step / 100
        offset = (room[0] / scale - left, room[1] / scale - top)
        if clear(scale, offset):
            centred = (offset[0] + (room[2] / scale - (right - left)) / 2, offset[1])
            offset = centred if clear(scale, centred) else offset
            return {"scale": scale, "offset": [round(offset[0], 3), round(offset[1], 3)]}
    raise ValueError(f"the workflow does not fit the window at zoom {MIN_SCALE}, the least that shows text: "
                     "put its groups in fewer columns")

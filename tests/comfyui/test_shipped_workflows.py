"""Shipped workflows in a real ComfyUI: the schema snapshot is current, and every workflow runs.

Refresh the snapshot after a deliberate schema change: ``VIVIDZOO_UPDATE_SNAPSHOT=1 pytest tests/comfyui``.
"""

from __future__ import annotations

import json
import os
from urllib.parse import parse_qs, urlparse

import av
import pytest
from comfyui_harness import comfy_run
from workflow_schema import SNAPSHOT, load, normalise, shipped_workflows, widgets

LIMIT_FRAMES = 32  # AnimateDiff v2's position encoding


def used_node_types() -> set[str]:
    return {node["type"] for path in shipped_workflows() for node in load(path)["nodes"]}


def test_object_info_snapshot_is_current(comfy_server):
    live = comfy_server.get("/object_info")
    covered = sorted(used_node_types() | {name for name in live if name.startswith("VividZoo_")})
    current = {name: normalise(live[name]) for name in covered}
    if os.environ.get("VIVIDZOO_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    stored = json.loads(SNAPSHOT.read_text())
    changed = [name for name in covered if stored.get(name) != current[name]]
    assert not changed, f"node schemas changed: {changed}; if deliberate, refresh with VIVIDZOO_UPDATE_SNAPSHOT=1"


def small_copy(workflow: dict, schema: dict) -> dict:
    """The workflow at test size: 64 px, 2 steps, few frames (long videos stay longer than the limit)."""
    for node in workflow["nodes"]:
        names = [name for name, _, _ in widgets(schema[node["type"]])]
        values = node.get("widgets_values")

        def set_value(name, value):
            values[names.index(name)] = value

        if node["type"] == "VividZoo_EmptyMultiViewVideoLatent":
            frames = values[names.index("frames")]
            set_value("frames", LIMIT_FRAMES + 4 if frames > LIMIT_FRAMES else 5)
            set_value("width", 64)
            set_value("height", 64)
        if node["type"] in ("KSampler", "VividZoo_Sampler"):
            set_value("steps", 2)
    frames = next(n["widgets_values"][1] for n in workflow["nodes"] if n["type"] == "VividZoo_EmptyMultiViewVideoLatent")
    for node in workflow["nodes"]:
        if node["type"] == "VividZoo_OrbitTrajectory":
            node["widgets_values"][1] = frames
    return workflow


@pytest.mark.parametrize("path", shipped_workflows(), ids=lambda p: p.stem)
def test_shipped_workflow_runs_with_comfy_cli(comfy_server, tmp_path, path):
    schema = comfy_server.get("/object_info")
    workflow = small_copy(load(path), schema)
    frames = next(n["widgets_values"][1] for n in workflow["nodes"] if n["type"] == "VividZoo_EmptyMultiViewVideoLatent")
    copy = tmp_path / path.name
    copy.write_text(json.dumps(workflow))
    envelope = comfy_run(comfy_server, copy)
    assert envelope["returncode"] == 0 and envelope.get("ok"), envelope
    files = [parse_qs(urlparse(url).query) for url in envelope["data"]["outputs"]]
    previews = [comfy_server.base / f["type"][0] / f.get("subfolder", [""])[0] / f["filename"][0]
                for f in files if f["filename"][0].endswith("_.webp")]
    combines = [n for n in workflow["nodes"] if n["type"] == "VividZoo_MultiViewVideoCombine"]
    assert len(previews) == len(combines) >= 1, envelope["data"]["outputs"]
    for preview in previews:
        with av.open(str(preview).replace("_.webp", "_grid.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == frames

"""Shipped workflows in ComfyUI's frontend (headless Chromium): no missing nodes, tidy on the canvas as the
frontend draws them (tests/workflow_layout.py's rules), and with empty model folders the missing-models dialog
names each file to download and the folder it goes in; the node search finds the nodes by the words people type.

``VIVIDZOO_UPDATE_LAYOUT=1`` lays every workflow out again from its plan (tests/workflow_plans.py) with the
node sizes the frontend draws, and retakes the pictures: the thumbnails beside the workflows, and in
docs/images/ the screenshot of each and of an output folder.

Needs Chromium (``VIVIDZOO_CHROMIUM``, default /usr/bin/chromium) and the ``playwright`` package
(no browser download: it drives the system Chromium). Screenshots go to ``VIVIDZOO_SCREENSHOTS``
(default: the test's temporary folder).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from comfyui_harness import REPO, ComfyServer, comfy_run
from workflow_layout import WINDOW, Geometry, lay_out, layout_problems, stored_boxes
from workflow_plans import PLANS, note_text
from workflow_schema import SNAPSHOT, WORKFLOWS, load, shipped_workflows

CHROMIUM = os.environ.get("VIVIDZOO_CHROMIUM", "/usr/bin/chromium")
READY = "window.app && app.graph && Object.keys(LiteGraph.registered_node_types).length > 0"
PROBLEMS = """() => {
  const missing = [], broken = [];
  const visit = (graph) => {
    for (const node of graph.nodes) {
      if (!(node.type in LiteGraph.registered_node_types)) missing.push(node.type);
      if (node.has_errors) broken.push(node.type);
      if (node.isSubgraphNode?.()) visit(node.subgraph);
    }
  };
  visit(app.graph);
  return {missing, broken, count: app.graph.nodes.length};
}"""
# Each node's box as drawn (LiteGraph's boundingRect, title bar included, after a draw), the groups, the zoom, the
# free canvas (not under the side bar and the tabs) and what floats over it (run bar, minimap), in window pixels.
GEOMETRY = """() => {
  app.canvas.draw(true, true);
  const rect = (e) => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; };
  return {
    nodes: app.graph.nodes.map(n => ({id: n.id, box: Array.from(n.boundingRect), size: Array.from(n.size)})),
    groups: app.graph.groups.map(g => ({title: g.title, box: Array.from(g._bounding)})),
    scale: app.canvas.ds.scale, offset: Array.from(app.canvas.ds.offset), lowQuality: app.canvas.low_quality,
    panel: rect(document.querySelector('.graph-canvas-panel')),
    covers: [...document.querySelectorAll('.litegraph-minimap, .actionbar')].map(rect),
  };
}"""
LOAD = ("async ([wf, models]) => { await app.loadGraphData(wf, true, true, null, "
        "{showMissingNodesDialog: false, showMissingModelsDialog: models}); }")


@pytest.fixture(scope="module")
def chromium():
    playwright = pytest.importorskip("playwright.sync_api", reason="browser test SKIPPED: pip install playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"browser test SKIPPED: no Chromium at {CHROMIUM} (apt-get install chromium, or set VIVIDZOO_CHROMIUM)"
        )
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


@contextmanager
def frontend(chromium, server: ComfyServer) -> Iterator:
    """ComfyUI's frontend from ``server`` in a new page, ready to load workflows."""
    page = chromium.new_page(viewport={"width": WINDOW[0], "height": WINDOW[1]})  # the window the layout is for
    try:
        page.goto(server.url)
        page.wait_for_function(READY, timeout=60_000)
        yield page
    finally:
        page.close()


def screenshot(page, name: str, default: Path) -> Path:
    folder = Path(os.environ.get("VIVIDZOO_SCREENSHOTS", default))
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / f"{name}.png"
    page.screenshot(path=str(shot))
    return shot


def drawn(page, workflow: dict) -> tuple[Geometry, dict]:
    """``workflow`` loaded and drawn: its geometry as the frontend draws it, and what the page returned."""
    page.evaluate(LOAD, [workflow, False])
    page.wait_for_timeout(300)
    seen = page.evaluate(GEOMETRY)
    stored = stored_boxes(workflow)
    geometry = Geometry(
        nodes={n["id"]: tuple(n["box"]) for n in seen["nodes"]}, titles=stored.titles, notes=stored.notes,
        groups={g["title"]: tuple(g["box"]) for g in seen["groups"]}, links=stored.links, scale=seen["scale"],
        offset=tuple(seen["offset"]), panel=tuple(seen["panel"]), covers=tuple(tuple(c) for c in seen["covers"]))
    return geometry, seen


def update_layout(page, path: Path) -> dict:
    """Lays ``path`` out from its plan with the sizes the frontend draws its nodes at, and saves it."""
    workflow = load(path)
    _, seen = drawn(page, workflow)
    sizes = {n["id"]: [math.ceil(v) for v in n["size"]] for n in seen["nodes"]}
    for node in workflow["nodes"]:
        node["size"] = [max(a, b) for a, b in zip(node["size"], sizes[node["id"]])]
    plan = PLANS[path.stem]
    workflow = lay_out(workflow, plan.columns, note_text(workflow, plan, json.loads(SNAPSHOT.read_text())))
    path.write_text(json.dumps(workflow, indent=1) + "\n")
    return workflow


def take_pictures(chromium, server: ComfyServer, workflow: dict, name: str) -> None:
    """The workflow as it opens in a fresh page: a thumbnail beside it and a screenshot for docs/comfyui.md
    (small JPEGs)."""
    from io import BytesIO

    from PIL import Image

    with frontend(chromium, server) as page:
        page.evaluate(LOAD, [workflow, False])
        page.wait_for_timeout(1000)
        shot = Image.open(BytesIO(page.screenshot())).convert("RGB")
    shot.resize((960, 540), Image.LANCZOS).save(WORKFLOWS / f"{name}.jpg", quality=80)
    shot.resize((1280, 720), Image.LANCZOS).save(DOCS_IMAGES / f"{name}.jpg", quality=75)


@pytest.fixture(scope="module")
def page(chromium, comfy_server) -> Iterator:
    with frontend(chromium, comfy_server) as page:
        yield page


@pytest.mark.parametrize("path", shipped_workflows(), ids=lambda p: p.stem)
def test_workflow_loads_with_no_missing_nodes(page, path, tmp_path):
    workflow = load(path)
    page.evaluate(LOAD, [workflow, False])
    page.wait_for_timeout(500)
    report = page.evaluate(PROBLEMS)
    assert report == {"missing": [], "broken": [], "count": len(workflow["nodes"])}
    assert screenshot(page, path.stem, tmp_path).stat().st_size > 20_000  # a rendered graph, not a blank page


DOCS_IMAGES = REPO / "docs" / "images"


@pytest.mark.parametrize("path", shipped_workflows(), ids=lambda p: p.stem)
def test_workflow_is_tidy_as_drawn(chromium, comfy_server, page, path):
    """No node over another, each in its group, no link running back, all in view at the zoom it opens with."""
    workflow = update_layout(page, path) if os.environ.get("VIVIDZOO_UPDATE_LAYOUT") else load(path)
    geometry, seen = drawn(page, workflow)
    assert (geometry.scale, list(geometry.offset)) == (workflow["extra"]["ds"]["scale"],
                                                       workflow["extra"]["ds"]["offset"])
    assert layout_problems(geometry) == []
    assert not seen["lowQuality"], "opens at a zoom where the frontend draws nodes without their text"
    if os.environ.get("VIVIDZOO_UPDATE_LAYOUT"):
        take_pictures(chromium, comfy_server, workflow, path.stem)


def test_a_node_moved_onto_another_is_caught(page):
    workflow = load(WORKFLOWS / "vividzoo_text_to_multiview_video.json")
    assert layout_problems(drawn(page, workflow)[0]) == []
    decode, combine = (next(n for n in workflow["nodes"] if n["type"] == kind)
                       for kind in ("VAEDecode", "VividZoo_MultiViewVideoCombine"))
    decode["pos"] = [combine["pos"][0] + 30, combine["pos"][1] + 30]
    problems = layout_problems(drawn(page, workflow)[0])
    assert any(f"node {decode['id']} " in p and f"node {combine['id']} " in p and "overlap" in p for p in problems)


def test_only_the_drawn_size_shows_a_long_title_covering_the_next_node(page):
    """The upscaled workflow as first shipped: its Upscale node's long title made the frontend draw it wider than
    the file says, over the Combine node beside it. The stored sizes show nothing; the drawn ones do (the node
    stays where the layout puts it, its width in the file 270)."""
    workflow = load(WORKFLOWS / "vividzoo_multiview_video_upscaled.json")
    upscale = next(n for n in workflow["nodes"] if n["type"] == "ImageScaleBy")
    combine = next(n for n in workflow["nodes"] if n["type"] == "VividZoo_MultiViewVideoCombine")
    upscale["title"] = "Upscale (swap for Upscale Image (using Model) with an ESRGAN model)"
    assert layout_problems(stored_boxes(workflow)) == []
    problems = layout_problems(drawn(page, workflow)[0])
    assert any(f"node {upscale['id']} " in p and f"node {combine['id']} " in p and "overlap" in p for p in problems)


MVDREAM_DOWNLOAD = {
    "vividzoo / sd-v1.5-4view.pt": "https://huggingface.co/MVDream/MVDream/resolve/main/sd-v1.5-4view.pt?download=true"}
MISSING_MODELS = {
    "vividzoo_text_to_multiview_video": {
        **MVDREAM_DOWNLOAD,
        "animatediff_models / mm_sd_v15_v2.ckpt":
            "https://huggingface.co/guoyww/animatediff/resolve/main/mm_sd_v15_v2.ckpt?download=true",
    },
    "vividzoo_animate3d_text_to_multiview_video": {
        **MVDREAM_DOWNLOAD,
        "animatediff_models / animate3d_motion_modules.ckpt":
            "https://huggingface.co/yanqinJiang/animate3d/resolve/main/animate3d_motion_modules.ckpt?download=true",
        "ipadapter / ip-adapter_sd15.safetensors":
            "https://huggingface.co/h94/IP-Adapter/resolve/main/models/ip-adapter_sd15.safetensors?download=true",
        "clip_vision / CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors":
            "https://huggingface.co/h94/IP-Adapter/resolve/main/models/image_encoder/model.safetensors?download=true",
    },
}
# The reconstruction workflow with released weights only: Animate3D's files and L4GM's two, in models/lgm.
MISSING_MODELS["vividzoo_animate3d_to_l4gm"] = {
    **MISSING_MODELS["vividzoo_animate3d_text_to_multiview_video"],
    "lgm / recon.safetensors": "https://huggingface.co/jiawei011/L4GM/resolve/main/recon.safetensors?download=true",
    "lgm / interp.safetensors": "https://huggingface.co/jiawei011/L4GM/resolve/main/interp.safetensors?download=true",
}


@pytest.mark.parametrize("name", MISSING_MODELS)
def test_missing_models_dialog_names_files_and_folders(chromium, empty_comfy_server, tmp_path, name):
    with frontend(chromium, empty_comfy_server) as page:
        page.evaluate(LOAD, [load(WORKFLOWS / f"{name}.json"), True])
        dialog = page.locator(".comfy-missing-models")
        dialog.wait_for(timeout=30_000)
        labels = {span.inner_text(): span.get_attribute("title") for span in dialog.locator("span[title]").all()}
        screenshot(page, f"missing_models_dialog_{name}", tmp_path)
    assert labels == MISSING_MODELS[name]


# word -> a node the node search of ComfyUI v0.12.1's own frontend (1.37.11) lists for it. That frontend matches
# the id and display name only; later ones also match the schemas' search_aliases (test_node_search.py), so the
# display names carry the words people type that the names lacked (AnimateDiff, turntable, 4D), near their start:
# its fuzzy match gives up on words further in than about 30 characters.
SEARCHES = {
    "multiview": "Multi-View Video Combine", "multi-view": "Empty Multi-View Video Latent",
    "4D": "Vivid-ZOO Sampler (multi-view 4D video)", "turntable": "Vivid-ZOO Orbit Trajectory (turntable)",
    "orbit": "Vivid-ZOO Orbit Cameras", "AnimateDiff": "Vivid-ZOO AnimateDiff Motion Module Loader",
    "MVDream": "Vivid-ZOO MVDream Checkpoint Loader", "Animate3D": "Vivid-ZOO Animate3D Loader",
    "gaussian": "Multi-View Video to Gaussians", "LGM": "Vivid-ZOO LGM / L4GM Loader",
    "L4GM": "Vivid-ZOO LGM / L4GM Loader",
    "PLY": "Save Gaussian Sequence (PLY)",
}


def test_node_search_finds_the_nodes_by_the_words_people_type(chromium, comfy_server):
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    listed = {}
    with frontend(chromium, comfy_server) as page:
        page.evaluate("() => app.graph.clear()")
        box = page.get_by_placeholder("Search Nodes...")
        for word in SEARCHES:
            for attempt in range(3):  # on a loaded machine a double-click can land before the canvas takes it
                page.mouse.dblclick(900, 600)  # on the empty canvas: the node search opens
                try:
                    box.wait_for(state="visible", timeout=5000)
                    break
                except PlaywrightTimeoutError:
                    if attempt == 2:
                        raise
            box.fill(word)
            page.wait_for_timeout(500)
            listed[word] = [" ".join(text.split()) for text in page.locator("[role=option]").all_inner_texts()]
            page.keyboard.press("Escape")
            box.wait_for(state="hidden")  # the dialog closes before the next double-click (slower with more nodes)
            page.wait_for_timeout(300)
    missing = {word: found for word, found in listed.items() if not any(o.startswith(SEARCHES[word]) for o in found)}
    assert not missing, missing


def test_output_folder_holds_the_videos_cameras_and_frames(chromium, comfy_server, tmp_path):
    """The basic workflow run (small, with save_frames on): its output folder has every file, and a page listing
    them beside the animated preview is the picture of docs/comfyui.md (retaken with VIVIDZOO_UPDATE_LAYOUT=1)."""
    from html import escape

    from test_shipped_workflows import small_copy, video_frames

    from vividzoo_core.cameras import CAMERAS_FILE
    from vividzoo_core.video import FRAMES_FOLDER, GRID_MP4, GRID_WEBP, TRANSFORMS_FILE, view_video_name

    workflow = small_copy(load(WORKFLOWS / "vividzoo_text_to_multiview_video.json"), comfy_server.get("/object_info"))
    combine = next(n for n in workflow["nodes"] if n["type"] == "VividZoo_MultiViewVideoCombine")
    combine["widgets_values"][-1] = True  # save_frames
    (tmp_path / "workflow.json").write_text(json.dumps(workflow))
    envelope = comfy_run(comfy_server, tmp_path / "workflow.json")
    assert envelope["returncode"] == 0 and envelope.get("ok"), envelope
    output = comfy_server.base / "output"
    folder = max(output.glob(f"{combine['widgets_values'][2]}_*/"))
    files = sorted(folder.iterdir())
    expected = {GRID_MP4, GRID_WEBP, *map(view_video_name, range(4)), CAMERAS_FILE, TRANSFORMS_FILE, FRAMES_FOLDER}
    assert {f.name for f in files} == expected
    frames = sorted((folder / FRAMES_FOLDER).iterdir())
    assert len(frames) == 4 * video_frames(workflow)
    rows = "".join(f"<tr><td>{escape(f.name)}{'/' if f.is_dir() else ''}</td><td>"
                   f"{f'{len(frames)} PNGs, {frames[0].name} ...' if f.is_dir() else f'{f.stat().st_size:,} bytes'}"
                   "</td></tr>" for f in files)
    page_file = tmp_path / "output_folder.html"
    page_file.write_text(
        f"<body style='font:16px sans-serif;background:#202020;color:#ddd;margin:24px'>"
        f"<h3>ComfyUI/output/{escape(folder.relative_to(output).as_posix())}/</h3><div style='display:flex;gap:40px'>"
        f"<table cellpadding=4>{rows}</table><div>{GRID_WEBP} (random test weights: coloured noise)<br>"
        f"<img src='{(folder / GRID_WEBP).as_uri()}' style='width:512px;image-rendering:pixelated'></div></div>")
    page = chromium.new_page(viewport={"width": 1000, "height": 440})
    try:
        page.goto(page_file.as_uri())
        page.wait_for_timeout(500)
        assert page.evaluate("document.images[0].naturalWidth") == 4 * page.evaluate("document.images[0].naturalHeight")
        if os.environ.get("VIVIDZOO_UPDATE_LAYOUT"):
            page.screenshot(path=str(DOCS_IMAGES / "output_folder.jpg"), type="jpeg", quality=80)
    finally:
        page.close()

"""Shipped workflows in ComfyUI's frontend (headless Chromium): no missing nodes, and with empty model
folders the missing-models dialog names each file to download and the folder it goes in.

Needs Chromium (``VIVIDZOO_CHROMIUM``, default /usr/bin/chromium) and the ``playwright`` package
(no browser download: it drives the system Chromium). Screenshots go to ``VIVIDZOO_SCREENSHOTS``
(default: the test's temporary folder).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from comfyui_harness import ComfyServer
from workflow_schema import WORKFLOWS, load, shipped_workflows

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
    page = chromium.new_page(viewport={"width": 1920, "height": 1080})
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


@pytest.mark.parametrize("name", MISSING_MODELS)
def test_missing_models_dialog_names_files_and_folders(chromium, empty_comfy_server, tmp_path, name):
    with frontend(chromium, empty_comfy_server) as page:
        page.evaluate(LOAD, [load(WORKFLOWS / f"{name}.json"), True])
        dialog = page.locator(".comfy-missing-models")
        dialog.wait_for(timeout=30_000)
        labels = {span.inner_text(): span.get_attribute("title") for span in dialog.locator("span[title]").all()}
        screenshot(page, f"missing_models_dialog_{name}", tmp_path)
    assert labels == MISSING_MODELS[name]

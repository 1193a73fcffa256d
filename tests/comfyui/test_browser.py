"""Every shipped workflow loads in ComfyUI's frontend (headless Chromium) with no missing nodes.

Needs Chromium (``VIVIDZOO_CHROMIUM``, default /usr/bin/chromium) and the ``playwright`` package
(no browser download: it drives the system Chromium). Screenshots go to ``VIVIDZOO_SCREENSHOTS``
(default: the test's temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from workflow_schema import load, shipped_workflows

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


@pytest.fixture(scope="module")
def page(comfy_server):
    playwright = pytest.importorskip("playwright.sync_api", reason="browser test SKIPPED: pip install playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser test SKIPPED: no Chromium at {CHROMIUM} (apt-get install chromium, or set VIVIDZOO_CHROMIUM)")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(comfy_server.url)
        page.wait_for_function(READY, timeout=60_000)
        yield page
        browser.close()


@pytest.mark.parametrize("path", shipped_workflows(), ids=lambda p: p.stem)
def test_workflow_loads_with_no_missing_nodes(page, path, tmp_path):
    workflow = load(path)
    page.evaluate("async (wf) => { await app.loadGraphData(wf, true, true, null, {showMissingNodesDialog: false}); }",
                  workflow)
    page.wait_for_timeout(500)
    report = page.evaluate(PROBLEMS)
    assert report == {"missing": [], "broken": [], "count": len(workflow["nodes"])}
    folder = Path(os.environ.get("VIVIDZOO_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / f"{path.stem}.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000  # a rendered graph, not a blank page

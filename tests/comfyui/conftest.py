"""Fixtures and skip rules for the ComfyUI integration tests (see comfyui_harness.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
from collections.abc import Iterator

import pytest
from comfyui_harness import (
    PACK_NAME,
    REPO,
    SKIP_REASON,
    ComfyServer,
    comfyui_dir,
    comfyui_python,
    free_port,
    write_weights,
)


def pytest_collection_modifyitems(config, items):
    if comfyui_dir() is None:
        marker = pytest.mark.skip(reason=SKIP_REASON)
        for item in items:
            if "tests/comfyui" in str(item.fspath).replace(os.sep, "/"):
                item.add_marker(marker)


def pytest_terminal_summary(terminalreporter):
    if comfyui_dir() is None:
        terminalreporter.write_sep("!", SKIP_REASON, yellow=True, bold=True)


def start_server(base) -> Iterator[ComfyServer]:
    """A headless ComfyUI on the CPU with ``base`` as its base directory (this pack linked in)."""
    root = comfyui_dir()
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / PACK_NAME).symlink_to(REPO, target_is_directory=True)
    settings = base / "user" / "default"
    settings.mkdir(parents=True)
    (settings / "comfy.settings.json").write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    port = free_port()
    log = base / "server.log"
    python = comfyui_python(root)
    process = subprocess.Popen(
        [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
         "--disable-auto-launch", "--database-url", "sqlite:///:memory:"],
        cwd=root, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    server = ComfyServer(f"http://127.0.0.1:{port}", port, base, log, root, python)
    deadline = time.time() + 180
    while True:
        try:
            server.get("/object_info/VividZoo_Sampler")
            break
        except (urllib.error.URLError, ConnectionError, KeyError) as error:
            if process.poll() is not None or time.time() > deadline:
                process.kill()
                raise RuntimeError(f"ComfyUI did not start; its log:\n{log.read_text()[-4000:]}") from error
            time.sleep(0.5)
    yield server
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory) -> Iterator[ComfyServer]:
    """Random tiny weights under the real file names the shipped workflows use."""
    base = tmp_path_factory.mktemp("comfy_base")
    write_weights(base, tmp_path_factory.mktemp("weights"))
    yield from start_server(base)


@pytest.fixture(scope="module")
def empty_comfy_server(tmp_path_factory) -> Iterator[ComfyServer]:
    """A first-hour user's ComfyUI: the pack installed, its model folders made and empty."""
    base = tmp_path_factory.mktemp("comfy_base_empty")
    for folder in ("vividzoo", "animatediff_models", "checkpoints", "ipadapter", "clip_vision"):
        (base / "models" / folder).mkdir(parents=True)
    yield from start_server(base)

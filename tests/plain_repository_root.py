"""pytest plugin: collect the repository root as a plain folder.

The root's ``__init__.py`` is ComfyUI's entry point for the pack; pytest would otherwise treat the
root as a package and import it, which needs ComfyUI.
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_collect_directory(path: Path, parent: pytest.Collector):
    if path == ROOT:
        return pytest.Dir.from_parent(parent, path=path)
    return None

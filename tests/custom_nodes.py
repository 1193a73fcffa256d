"""Importing a ComfyUI custom-node folder as a package, the way ComfyUI loads custom nodes.

Shared by the tests (this pack with ComfyUI or its stand-ins) and the benches (this pack, and
AnimateDiff-Evolved beside it), which add this folder to ``sys.path``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
PACK_PACKAGE = "vividzoo_pack"
"""The package name this pack is imported under (ComfyUI names it after its folder)."""


def import_custom_nodes(folder: Path = REPO, name: str = PACK_PACKAGE) -> ModuleType:
    """Imports ``folder`` (its ``__init__.py``) as the package ``name``, registered in ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(name, Path(folder) / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return package

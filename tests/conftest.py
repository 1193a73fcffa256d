"""Shared fixtures: random tiny checkpoints in the real file layouts (written once per test session), the
node pack on ComfyUI stand-ins."""

from __future__ import annotations

import importlib
import json
import types

import pytest
import torch
from fake_comfyui import PACKAGE, pack_with_fake_comfyui
from workflow_schema import SNAPSHOT

from vividzoo_core.synthetic_weights import RandomWeights, write_test_weights


@pytest.fixture(scope="session")
def weights(tmp_path_factory: pytest.TempPathFactory) -> RandomWeights:
    return write_test_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def fake_pack() -> types.ModuleType:
    """The node pack imported with the ComfyUI stand-ins (tests/fake_comfyui.py): its ``nodes`` package."""
    with pack_with_fake_comfyui(json.loads(SNAPSHOT.read_text())):
        yield importlib.import_module(f"{PACKAGE}.nodes")

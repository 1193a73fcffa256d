"""Shared fixtures: random tiny checkpoints in the real file layouts, written once per test session."""

from __future__ import annotations

import pytest
import torch

from vividzoo_core.synthetic_weights import RandomWeights, write_test_weights


@pytest.fixture(scope="session")
def weights(tmp_path_factory: pytest.TempPathFactory) -> RandomWeights:
    return write_test_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)

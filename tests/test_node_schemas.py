"""Node schemas without ComfyUI: they import, ids are unique and prefixed, and they match the snapshot
of ComfyUI's /object_info taken from a real ComfyUI (kept current by tests/comfyui/test_workflows.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from fake_comfyui import node_info, pack_with_fake_comfyui
from workflow_schema import SNAPSHOT, normalise

SNAPSHOT_DATA = json.loads(SNAPSHOT.read_text())


@pytest.fixture(scope="module")
def nodes():
    with pack_with_fake_comfyui(SNAPSHOT_DATA) as pack:
        extension = asyncio.run(pack.comfy_entrypoint())
        yield asyncio.run(extension.get_node_list())


def test_ids_are_unique_prefixed_and_documented(nodes):
    ids = [node.GET_SCHEMA().node_id for node in nodes]
    assert len(ids) == len(set(ids)) == 21
    for node in nodes:
        schema = node.GET_SCHEMA()
        assert schema.node_id.startswith("VividZoo_") and schema.category.startswith("VividZoo")
        assert len(schema.description) > 40, schema.node_id
        assert schema.display_name
        for item in schema.inputs:
            assert item.options.get("tooltip"), f"{schema.node_id}.{item.id} has no tooltip"


def test_schemas_match_the_comfyui_snapshot(nodes):
    for node in nodes:
        info = node_info(node)
        name = node.GET_SCHEMA().node_id
        assert normalise(info) == SNAPSHOT_DATA[name], f"{name} differs from tests/data/object_info.json"

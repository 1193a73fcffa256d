"""The words people type in the node search lead to the pack's nodes, as the real server describes them.

ComfyUI v0.12.1 serves a V3 node's ``search_aliases`` in ``/object_info``; the node search matches a word
against the node's id, its display name and those aliases.
"""

from __future__ import annotations

import pytest

# word -> the nodes it must find (others may come too)
FINDS = {
    "multiview": {"VividZoo_MVDreamCheckpointLoader", "VividZoo_EmptyMultiViewVideoLatent", "VividZoo_Sampler",
                  "VividZoo_MultiViewVideoCombine", "VividZoo_ApplyVividZoo"},
    "multi-view": {"VividZoo_MVDreamCheckpointLoader", "VividZoo_EmptyMultiViewVideoLatent", "VividZoo_Sampler",
                   "VividZoo_MultiViewVideoCombine", "VividZoo_ApplyVividZoo"},
    "4D": {"VividZoo_Sampler", "VividZoo_ApplyVividZoo", "VividZoo_EmptyMultiViewVideoLatent",
           "VividZoo_MultiViewVideoCombine", "VividZoo_Animate3DLoader", "VividZoo_Animate3DCondition"},
    "turntable": {"VividZoo_OrbitTrajectory", "VividZoo_OrbitCameras", "VividZoo_CameraPreview"},
    "orbit": {"VividZoo_OrbitCameras", "VividZoo_OrbitTrajectory", "VividZoo_CameraPreview"},
    "AnimateDiff": {"VividZoo_MotionModuleLoader", "VividZoo_ApplyVividZoo", "VividZoo_Sampler"},
    "MVDream": {"VividZoo_MVDreamCheckpointLoader", "VividZoo_MVDreamCameras", "VividZoo_ApplyVividZoo",
                "VividZoo_Sampler"},
    "Animate3D": {"VividZoo_Animate3DLoader", "VividZoo_Animate3DViews", "VividZoo_Animate3DCondition",
                  "VividZoo_FreeInit"},
}


def found(object_info: dict, word: str) -> set[str]:
    """The nodes whose id, display name or search aliases hold ``word`` (any case)."""
    word = word.lower()
    return {name for name, info in object_info.items()
            if any(word in text.lower() for text in [name, info.get("display_name") or "",
                                                     *(info.get("search_aliases") or [])])}


@pytest.fixture(scope="module")
def object_info(comfy_server) -> dict:
    return comfy_server.get("/object_info")


@pytest.mark.parametrize("word", FINDS)
def test_word_finds_the_right_nodes(object_info, word):
    assert FINDS[word] <= found(object_info, word), FINDS[word] - found(object_info, word)


def test_the_aliases_come_from_the_server(object_info):
    """Without the served aliases most of these words find nothing of the pack: the server must send them."""
    bare = {name: {k: v for k, v in info.items() if k != "search_aliases"} for name, info in object_info.items()}
    for word in ("turntable", "AnimateDiff", "4D"):
        assert not FINDS[word] <= found(bare, word)
    assert object_info["VividZoo_OrbitTrajectory"]["search_aliases"]

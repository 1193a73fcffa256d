"""Bad values for every widget input of the pack's nodes, sent as API prompts to the real server.

Inputs are discovered from ``/object_info``, so inputs added later are covered. Each bad value must
be refused at validation (a node error for that node) or stopped, before sampling, with Vivid-ZOO's
own error (a ValueError that names the value), never by a crash deeper down; and the server keeps
serving.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import av
import numpy as np
import pytest
from test_server import graph

from vividzoo_core.cameras import CAMERAS_FILE
from vividzoo_core.video import GRID_MP4, GRID_WEBP, view_video_name

NODE_IDS = {"VividZoo_MVDreamCheckpointLoader": "1", "VividZoo_MotionModuleLoader": "4",
            "VividZoo_AlignmentLoader": "5", "VividZoo_OrbitCameras": "6", "VividZoo_EmptyMultiViewVideoLatent": "7",
            "VividZoo_ApplyVividZoo": "8", "VividZoo_Sampler": "9", "VividZoo_MultiViewVideoCombine": "11"}
BAD_TEXT = {"filename_prefix": ["../../outside_the_output_folder"]}


def rescued_folder(message: str) -> Path | None:
    """The temp folder where a failed save kept the video (in full, or as frames.npz), if the message names one."""
    found = re.search(r"written to (\S+) instead|saved in (\S+)/frames\.npz", message)
    return Path(found[1] or found[2]) if found else None


def bad_values(spec: list) -> list:
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
    if isinstance(kind, list) or kind == "COMBO":
        return ["not-a-choice", 3]
    if kind in ("INT", "FLOAT"):
        values = ["seven", None]
        values += [options["min"] - 1] if "min" in options else []
        values += [options["max"] + 1] if "max" in options else []
        # (ComfyUI itself turns 1.5 into 1 for an INT, and any value into a BOOLEAN: not tried here.)
        return values + ([float("nan")] if kind == "FLOAT" else [])
    return []


def cases(info: dict):
    for node_type, node_id in NODE_IDS.items():
        for section in ("required", "optional"):
            for name, spec in info[node_type]["input"].get(section, {}).items():
                values = BAD_TEXT.get(name, []) if spec[0] == "STRING" else bad_values(spec)
                for value in values:
                    yield node_type, node_id, name, value


@pytest.fixture(scope="module")
def object_info(comfy_server) -> dict:
    return comfy_server.get("/object_info")


def test_bad_widget_values_are_node_errors(comfy_server, object_info):
    failures, checked = [], 0
    for node_type, node_id, name, value in cases(object_info):
        prompt = graph(frames=2, sampler="vividzoo" if node_type == "VividZoo_Sampler" else "apply",
                       prefix="VividZoo/fuzz")
        if node_id not in prompt:
            continue
        prompt[node_id]["inputs"][name] = value
        entry = comfy_server.run(prompt, timeout=300)
        checked += 1
        if "refused" in entry:
            if node_id not in entry["refused"].get("node_errors", {}):
                failures.append(f"{node_type}.{name}={value!r}: refused, but not as an error of that node: {entry}")
            continue
        errors = [data for event, data in entry["status"]["messages"] if event == "execution_error"]
        if not errors:
            failures.append(f"{node_type}.{name}={value!r}: accepted and ran")
        elif "VividZooError" not in errors[0]["exception_type"]:
            failures.append(f"{node_type}.{name}={value!r}: {errors[0]['node_type']} failed with "
                            f"{errors[0]['exception_type']}: {errors[0]['exception_message']}")
        for error in errors:
            if rescued_folder(error["exception_message"]):
                shutil.rmtree(rescued_folder(error["exception_message"]))
    assert checked > 40
    assert not failures, "\n".join(failures)
    assert "VividZoo_Sampler" in comfy_server.get("/object_info/VividZoo_Sampler")


@pytest.mark.parametrize("sampler, node", [("vividzoo", "VividZoo_Sampler"), ("apply", "KSampler")])
def test_a_video_too_large_for_memory_is_refused_before_sampling(comfy_server, sampler, node):
    prompt = graph(frames=32, sampler=sampler, prefix="VividZoo/too_large")
    prompt["7"]["inputs"].update(width=2048, height=2048)
    started = time.time()
    entry = comfy_server.run(prompt, timeout=300)
    errors = [data for event, data in entry["status"]["messages"] if event == "execution_error"]
    assert errors and errors[0]["node_type"] == node, entry["status"]
    assert re.search(r"4 views x 32 frames x 2048x2048 px needs at least about [\d.]+ GB on cpu .* fits: at most "
                     r"\d+x\d+ px at 32 frames", errors[0]["exception_message"]), errors[0]["exception_message"]
    assert time.time() - started < 60  # refused, not sampled


def test_combine_keeps_the_frames_when_saving_fails(comfy_server):
    prompt = graph(frames=2, prefix="../../outside_the_output_folder")
    entry = comfy_server.run(prompt, timeout=300)
    errors = [data for event, data in entry["status"]["messages"] if event == "execution_error"]
    assert errors and errors[0]["node_type"] == "VividZoo_MultiViewVideoCombine", entry["status"]
    message = errors[0]["exception_message"]
    assert message.startswith("could not save the video"), message
    rescued = rescued_folder(message)
    with av.open(str(rescued / GRID_MP4)) as container:  # the whole video, written where it could be
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    names = {path.name for path in rescued.iterdir()}
    shutil.rmtree(rescued)
    assert frames.shape == (2, 64, 4 * 64, 3) and frames.std() > 0
    assert {GRID_WEBP, CAMERAS_FILE, *map(view_video_name, range(4))} <= names

"""Shipped workflows in a real ComfyUI: the schema snapshot is current, and every workflow runs.

Refresh the snapshot after a deliberate schema change: ``VIVIDZOO_UPDATE_SNAPSHOT=1 pytest tests/comfyui``.
"""

from __future__ import annotations

import json
import os
import subprocess
from urllib.parse import parse_qs, urlparse

import av
import pytest
from comfyui_harness import REPO, comfy_run
from workflow_schema import SNAPSHOT, WORKFLOWS, load, normalise, server_nodes, shipped_workflows, widgets

from vividzoo_core.gaussian_sequence import TURNTABLE_MP4, load_gaussian_sequence, turntable_frames
from vividzoo_core.video import GRID_MP4, GRID_WEBP, INFO_FILE

LIMIT_FRAMES = 32  # AnimateDiff v2's position encoding


def used_node_types() -> set[str]:
    return {node["type"] for path in shipped_workflows() for node in server_nodes(load(path))}


def test_object_info_snapshot_is_current(comfy_server):
    live = comfy_server.get("/object_info")
    covered = sorted(used_node_types() | {name for name in live if name.startswith("VividZoo_")})
    current = {name: normalise(live[name]) for name in covered}
    if os.environ.get("VIVIDZOO_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    stored = json.loads(SNAPSHOT.read_text())
    changed = [name for name in covered if stored.get(name) != current[name]]
    assert not changed, f"node schemas changed: {changed}; if deliberate, refresh with VIVIDZOO_UPDATE_SNAPSHOT=1"


# The nodes that set a workflow's frame count, and the widget holding it
FRAME_WIDGETS = {"VividZoo_EmptyMultiViewVideoLatent": 1, "VividZoo_Animate3DCondition": 0}


def video_frames(workflow: dict) -> int:
    return next(n["widgets_values"][FRAME_WIDGETS[n["type"]]] for n in workflow["nodes"] if n["type"] in FRAME_WIDGETS)


def small_copy(workflow: dict, schema: dict) -> dict:
    """The workflow at test size: 64 px, 2 steps, few frames (long videos stay longer than the limit), 2 FreeInit
    passes, LGM / L4GM at 64 px."""
    for node in server_nodes(workflow):
        names = [name for name, _, _ in widgets(schema[node["type"]])]
        values = node.get("widgets_values")

        def set_value(name, value, values=values, names=names):
            values[names.index(name)] = value

        if node["type"] == "VividZoo_EmptyMultiViewVideoLatent":
            frames = values[names.index("frames")]
            set_value("frames", LIMIT_FRAMES + 4 if frames > LIMIT_FRAMES else 5)
        if node["type"] == "VividZoo_Animate3DCondition":
            set_value("frames", 3)
        if node["type"] in ("VividZoo_EmptyMultiViewVideoLatent", "VividZoo_Animate3DCondition", "EmptyLatentImage"):
            set_value("width", 64)
            set_value("height", 64)
        if node["type"] in ("KSampler", "VividZoo_Sampler"):
            set_value("steps", 2)
        if node["type"] == "VividZoo_FreeInit":
            set_value("free_init_iterations", 2)
        if node["type"] == "VividZoo_MultiViewVideoToGaussians":
            set_value("input_size", 64)  # the tiny LGM / L4GM weights at the test size
    frames = video_frames(workflow)
    for node in workflow["nodes"]:
        if node["type"] == "VividZoo_OrbitTrajectory":
            node["widgets_values"][1] = frames
    return workflow


def run_small_copy(comfy_server, tmp_path, path, workflow):
    """Runs ``workflow`` (a small copy of ``path``) with comfy-cli; checks its videos have every frame."""
    frames = video_frames(workflow)
    copy = tmp_path / path.name
    copy.write_text(json.dumps(workflow))
    envelope = comfy_run(comfy_server, copy)
    assert envelope["returncode"] == 0 and envelope.get("ok"), envelope
    files = [parse_qs(urlparse(url).query) for url in envelope["data"]["outputs"]]
    previews = [comfy_server.base / f["type"][0] / f.get("subfolder", [""])[0] / f["filename"][0]
                for f in files if f["filename"][0] == GRID_WEBP]
    combines = [n for n in workflow["nodes"] if n["type"] == "VividZoo_MultiViewVideoCombine"]
    assert len(previews) == len(combines) >= 1, envelope["data"]["outputs"]
    for preview in previews:
        with av.open(str(preview.with_name(GRID_MP4))) as container:
            assert sum(1 for _ in container.decode(video=0)) == frames
    check_gaussians(comfy_server, workflow, files, frames)


def check_gaussians(comfy_server, workflow, files, frames):
    """Each Save Gaussian Sequence wrote a PLY per output frame (3x - 2 with L4GM's interpolation), the manifest,
    the turntable it shows, and info.json with a score for every input frame."""
    saves = [n for n in workflow["nodes"] if n["type"] == "VividZoo_SaveGaussianSequence"]
    turntables = [comfy_server.base / f["type"][0] / f.get("subfolder", [""])[0] / f["filename"][0]
                  for f in files if f["filename"][0] == TURNTABLE_MP4]
    assert len(turntables) == len(saves)
    interpolated = any(entry["name"] == "interpolation" and entry.get("link") is not None
                       for node in workflow["nodes"] if node["type"] == "VividZoo_MultiViewVideoToGaussians"
                       for entry in node["inputs"])
    for turntable in turntables:
        sequence = load_gaussian_sequence(turntable.parent)
        assert len(sequence.frames) == (3 * (frames - 1) + 1 if interpolated else frames)
        info = json.loads((turntable.parent / INFO_FILE).read_text())
        assert len(info["score"]["psnr_db"]) == frames and info["output_frames"] == len(sequence.frames)
        with av.open(str(turntable)) as container:
            assert sum(1 for _ in container.decode(video=0)) == turntable_frames(len(sequence.frames))


@pytest.mark.parametrize("path", shipped_workflows(), ids=lambda p: p.stem)
def test_shipped_workflow_runs_with_comfy_cli(comfy_server, tmp_path, path):
    run_small_copy(comfy_server, tmp_path, path, small_copy(load(path), comfy_server.get("/object_info")))


def test_test_weights_made_with_comfyuis_python_run_a_workflow(comfy_server, tmp_path):
    """The README's way to try the nodes without real weights: make-test-weights run by ComfyUI's Python."""
    result = subprocess.run(
        [comfy_server.python, "-m", "vividzoo_core.cli", "make-test-weights", "--comfyui-models",
         str(comfy_server.base / "models")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    chosen = {"VividZoo_MVDreamCheckpointLoader": ["vividzoo/TEST-RANDOM-mvdream_sd15_tiny_random.pt"],
              "VividZoo_MotionModuleLoader": ["animatediff_models/TEST-RANDOM-mm_v2_tiny_random.ckpt"],
              "VividZoo_AlignmentLoader": ["vividzoo/TEST-RANDOM-alignment_v2_tiny_random.safetensors"],
              "VividZoo_Animate3DLoader": ["animatediff_models/TEST-RANDOM-animate3d_motion_modules_tiny_random.ckpt",
                                           "ipadapter/TEST-RANDOM-ip-adapter_sd15_tiny_random.safetensors",
                                           "clip_vision/TEST-RANDOM-clip_vision_h_tiny_random.safetensors"],
              "VividZoo_ReconstructionModelLoader": ["lgm/TEST-RANDOM-model_fp16_fixrot.safetensors"]}
    for files in chosen.values():
        for file in files:
            assert f"wrote {comfy_server.base / 'models' / file}" in result.stdout
    for name in ("vividzoo_text_to_multiview_video.json", "vividzoo_animate3d_text_to_multiview_video.json",
                 "vividzoo_text_to_4d_gaussians.json"):
        workflow = small_copy(load(WORKFLOWS / name), comfy_server.get("/object_info"))
        for node in workflow["nodes"]:
            if node["type"] in chosen:
                node["widgets_values"][:len(chosen[node["type"]])] = [f.split("/")[1] for f in chosen[node["type"]]]
        run_small_copy(comfy_server, tmp_path, WORKFLOWS / name, workflow)

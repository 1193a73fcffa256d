"""The pack in a running ComfyUI: nodes listed, graphs run, bad inputs are node errors, cancel works."""

from __future__ import annotations

import time

import av
import pytest

from comfyui_harness import ALIGNMENT_NAME, LORA_NAME, MOTION_NAME, MVDREAM_NAME, PLAIN_SD_NAME

from vividzoo_core.cameras import CAMERAS_FILE
from vividzoo_core.settings import STEPS
from vividzoo_core.video import GRID_MP4, GRID_WEBP, view_video_name

EXPECTED_NODES = {
    "VividZoo_MVDreamCheckpointLoader", "VividZoo_MotionModuleLoader", "VividZoo_AlignmentLoader",
    "VividZoo_OrbitCameras", "VividZoo_OrbitTrajectory", "VividZoo_CamerasFromJSON", "VividZoo_CameraPreview",
    "VividZoo_EmptyMultiViewVideoLatent", "VividZoo_ApplyVividZoo", "VividZoo_Sampler",
    "VividZoo_MultiViewVideoCombine", "VividZoo_SelectView", "VividZoo_ViewsToGrid",
}


def graph(views=4, frames=4, camera_views=4, steps=2, sampler="apply", mvdream=MVDREAM_NAME, motion=MOTION_NAME,
          alignment=ALIGNMENT_NAME, prefix="VividZoo/test", context_frames=0):
    """An API-format text-to-video graph on the test weights."""
    prompt = {
        "1": {"class_type": "VividZoo_MVDreamCheckpointLoader", "inputs": {"ckpt_name": mvdream}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a corgi running, 3d asset"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "VividZoo_MotionModuleLoader", "inputs": {"model_name": motion}},
        "5": {"class_type": "VividZoo_AlignmentLoader", "inputs": {"alignment_name": alignment}},
        "6": {"class_type": "VividZoo_OrbitCameras",
              "inputs": {"views": camera_views, "elevation": 15.0, "azimuth_start": 0.0, "azimuth_span": 360.0}},
        "7": {"class_type": "VividZoo_EmptyMultiViewVideoLatent",
              "inputs": {"views": views, "frames": frames, "width": 64, "height": 64}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}},
        "11": {"class_type": "VividZoo_MultiViewVideoCombine",
               "inputs": {"images": ["10", 0], "views": views, "fps": 8.0, "filename_prefix": prefix,
                          "save_view_videos": True, "save_frames": False, "cameras": ["6", 0]}},
    }
    sampling = {"seed": 3, "steps": steps, "cfg": 7.5, "sampler_name": "ddim", "scheduler": "ddim_uniform",
                "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["7", 0], "denoise": 1.0}
    if sampler == "apply":
        prompt["8"] = {"class_type": "VividZoo_ApplyVividZoo",
                       "inputs": {"model": ["1", 0], "motion_module": ["4", 0], "cameras": ["6", 0],
                                  "beta_schedule": "linear", "alignment": ["5", 0]}}
        prompt["9"] = {"class_type": "KSampler", "inputs": {"model": ["8", 0], **sampling}}
    else:
        prompt["9"] = {"class_type": "VividZoo_Sampler",
                       "inputs": {"model": ["1", 0], "motion_module": ["4", 0], "cameras": ["6", 0],
                                  "alignment": ["5", 0], "beta_schedule": "linear", "context_frames": context_frames,
                                  "context_overlap": 2, **sampling}}
    return prompt


def error_message(entry: dict) -> str:
    for event, data in entry.get("status", {}).get("messages", []):
        if event == "execution_error":
            return f"{data['node_type']}: {data['exception_message']}"
    return ""


def saved_grid_frames(server, entry: dict, node: str = "11") -> int:
    preview = entry["outputs"][node]["images"][0]
    path = server.base / "output" / preview["subfolder"] / GRID_MP4
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_object_info_lists_every_node_with_descriptions(comfy_server):
    info = comfy_server.get("/object_info")
    ours = {name for name in info if name.startswith("VividZoo_")}
    assert ours == EXPECTED_NODES
    for name in ours:
        assert info[name]["description"], name
        assert info[name]["category"].startswith("VividZoo"), name
        for section in ("required", "optional"):
            for input_name, spec in info[name]["input"].get(section, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{name}.{input_name} has no tooltip"


@pytest.mark.parametrize("sampler", ["apply", "vividzoo"])
def test_text_to_multiview_video_runs(comfy_server, sampler):
    entry = comfy_server.run(graph(frames=5, sampler=sampler, prefix=f"VividZoo/{sampler}"))
    assert entry["status"]["status_str"] == "success", error_message(entry)
    assert saved_grid_frames(comfy_server, entry) == 5
    preview = entry["outputs"]["11"]["images"][0]
    folder = comfy_server.base / "output" / preview["subfolder"]
    # One folder per video, with the same file names as `vividzoo generate` writes.
    assert preview["filename"] == GRID_WEBP and folder.name == f"{sampler}_00001_"
    with av.open(str(folder / GRID_MP4)) as container:
        assert '"VividZoo_MVDreamCheckpointLoader"' in container.metadata["prompt"]  # the run's graph, embedded
    from PIL import Image

    assert any(str(v).startswith("prompt:") for v in Image.open(folder / GRID_WEBP).getexif().values())
    assert {p.name for p in folder.iterdir()} == {GRID_MP4, GRID_WEBP, CAMERAS_FILE, *map(view_video_name, range(4))}


def test_long_video_uses_context_windows(comfy_server):
    entry = comfy_server.run(graph(frames=36, sampler="vividzoo", context_frames=16, prefix="VividZoo/long"))
    assert entry["status"]["status_str"] == "success", error_message(entry)
    assert saved_grid_frames(comfy_server, entry) == 36


@pytest.mark.parametrize(
    "change, node, message",
    [
        ({"mvdream": PLAIN_SD_NAME}, "VividZoo_MVDreamCheckpointLoader", "plain Stable Diffusion checkpoint"),
        ({"motion": MVDREAM_NAME}, None, None),  # not in the motion folder: refused at validation
        ({"views": 3, "frames": 5}, "KSampler", "15 images, not a whole number of frames of 4 views"),
        ({"frames": 40}, "KSampler", "40 frames is more than the motion module sees at once"),
        ({"frames": 40, "sampler": "vividzoo", "context_frames": 30, "motion": "mm_sd_v15.ckpt"}, "VividZoo_Sampler",
         "longer than the motion module's limit of 24"),
    ],
)
def test_bad_inputs_are_node_errors_and_the_server_keeps_serving(comfy_server, change, node, message):
    entry = comfy_server.run(graph(**change))
    if node is None:
        assert "4" in entry["refused"]["node_errors"], entry
    else:
        assert entry["status"]["status_str"] == "error"
        assert error_message(entry).startswith(node) and message in error_message(entry), error_message(entry)
    assert "VividZoo_Sampler" in comfy_server.get("/object_info/VividZoo_Sampler")


def test_cancel_stops_a_run_promptly(comfy_server):
    prompt_id, refused = comfy_server.queue(graph(frames=4, steps=STEPS.high, sampler="vividzoo", prefix="VividZoo/cancel"))
    assert refused is None
    deadline = time.time() + 120
    while time.time() < deadline and not comfy_server.get("/queue")["queue_running"]:
        time.sleep(0.1)
    time.sleep(3)  # well into the sampling loop
    cancelled_at = time.time()
    comfy_server.post("/interrupt")
    entry = comfy_server.wait(prompt_id, timeout=60)
    stopped_after = time.time() - cancelled_at
    events = [event for event, _ in entry["status"]["messages"]]
    assert "execution_interrupted" in events
    assert stopped_after < 10
    ok = comfy_server.run(graph(frames=3, prefix="VividZoo/after_cancel"))
    assert ok["status"]["status_str"] == "success"


def test_training_free_and_aligned_branches_differ_in_one_graph(comfy_server):
    prompt = graph(frames=3, prefix="VividZoo/aligned")
    free = {f"free_{k}": v for k, v in graph(frames=3, alignment="none (training-free)",
                                              prefix="VividZoo/free").items()}
    for node in free.values():
        for key, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                node["inputs"][key] = [f"free_{value[0]}", value[1]]
    entry = comfy_server.run({**prompt, **free})
    assert entry["status"]["status_str"] == "success", error_message(entry)
    import numpy as np
    from PIL import Image

    def first_frame(node):
        preview = entry["outputs"][node]["images"][0]
        image = Image.open(comfy_server.base / "output" / preview["subfolder"] / preview["filename"])
        return np.asarray(image.convert("RGB"), dtype=np.float32)

    assert np.abs(first_frame("11") - first_frame("free_11")).max() > 1


def test_lora_loader_works_with_the_motion_modules(comfy_server):
    """The stock LoraLoaderModelOnly before Apply Vivid-ZOO: its weight patches apply with the injection."""
    outputs = {}
    for name, strength in (("no_lora", 0.0), ("lora", 1.0)):
        prompt = graph(frames=3, prefix=f"VividZoo/{name}")
        prompt["12"] = {"class_type": "LoraLoaderModelOnly",
                        "inputs": {"model": ["1", 0], "lora_name": LORA_NAME, "strength_model": strength}}
        prompt["8"]["inputs"]["model"] = ["12", 0]
        entry = comfy_server.run(prompt)
        assert entry["status"]["status_str"] == "success", error_message(entry)
        preview = entry["outputs"]["11"]["images"][0]
        outputs[name] = (comfy_server.base / "output" / preview["subfolder"] / preview["filename"]).read_bytes()
    assert outputs["lora"] != outputs["no_lora"]


@pytest.mark.parametrize("sampler", ["KSamplerAdvanced", "SamplerCustom"])
def test_stock_samplers_run_the_patched_model(comfy_server, sampler):
    prompt = graph(frames=3, prefix=f"VividZoo/{sampler}")
    common = {"model": ["8", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["7", 0], "cfg": 7.5}
    if sampler == "KSamplerAdvanced":
        prompt["9"] = {"class_type": "KSamplerAdvanced", "inputs": {
            **common, "add_noise": "enable", "noise_seed": 3, "steps": 2, "sampler_name": "ddim",
            "scheduler": "ddim_uniform", "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    else:
        prompt["12"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
        prompt["13"] = {"class_type": "BasicScheduler", "inputs": {"model": ["8", 0], "scheduler": "normal", "steps": 2,
                                                                   "denoise": 1.0}}
        prompt["9"] = {"class_type": "SamplerCustom", "inputs": {**common, "add_noise": True, "noise_seed": 3,
                                                                 "sampler": ["12", 0], "sigmas": ["13", 0]}}
    entry = comfy_server.run(prompt)
    assert entry["status"]["status_str"] == "success", error_message(entry)
    assert saved_grid_frames(comfy_server, entry) == 3


def test_view_nodes_feed_stock_image_nodes_and_the_vae_works_both_ways(comfy_server):
    prompt = graph(frames=3, prefix="VividZoo/views")
    prompt["12"] = {"class_type": "VividZoo_SelectView", "inputs": {"images": ["10", 0], "views": 4, "view": 2}}
    prompt["13"] = {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["12", 0], "filename_prefix": "VividZoo/view2",
                                                                "fps": 8.0, "lossless": False, "quality": 80,
                                                                "method": "default"}}
    prompt["14"] = {"class_type": "VividZoo_ViewsToGrid", "inputs": {"images": ["10", 0], "views": 4, "columns": 2}}
    prompt["15"] = {"class_type": "PreviewImage", "inputs": {"images": ["14", 0]}}
    prompt["16"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["14", 0], "vae": ["1", 2]}}
    prompt["17"] = {"class_type": "VAEDecodeTiled", "inputs": {"samples": ["16", 0], "vae": ["1", 2], "tile_size": 64,
                                                               "overlap": 32, "temporal_size": 64, "temporal_overlap": 8}}
    prompt["18"] = {"class_type": "PreviewImage", "inputs": {"images": ["17", 0]}}
    entry = comfy_server.run(prompt)
    assert entry["status"]["status_str"] == "success", error_message(entry)
    from PIL import Image

    saved = entry["outputs"]["13"]["images"][0]
    webp = Image.open(comfy_server.base / "output" / saved["subfolder"] / saved["filename"])
    assert webp.n_frames == 3 and webp.size == (64, 64)
    grids = entry["outputs"]["15"]["images"]
    assert len(grids) == 3
    grid = Image.open(comfy_server.base / "temp" / grids[0]["subfolder"] / grids[0]["filename"])
    assert grid.size == (128, 128)  # 2 x 2 views of 64 px
    assert len(entry["outputs"]["18"]["images"]) == 3

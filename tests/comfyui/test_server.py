"""The pack in a running ComfyUI: nodes listed, graphs run, bad inputs are node errors, cancel works."""

from __future__ import annotations

import time

import av
import pytest
from comfyui_harness import (
    ALIGNMENT_NAME,
    ANIMATE3D_FULL_NAME,
    ANIMATE3D_NAME,
    CLIP_VISION_NAME,
    IP_ADAPTER_NAME,
    LORA_NAME,
    MOTION_NAME,
    MVDREAM_NAME,
    PLAIN_SD_NAME,
    SDXL_IP_ADAPTER_NAME,
    WIDE_CLIP_VISION_NAME,
)

from vividzoo_core.cameras import CAMERAS_FILE
from vividzoo_core.settings import STEPS
from vividzoo_core.video import GRID_MP4, GRID_WEBP, view_video_name

EXPECTED_NODES = {
    "VividZoo_MVDreamCheckpointLoader", "VividZoo_MotionModuleLoader", "VividZoo_AlignmentLoader",
    "VividZoo_OrbitCameras", "VividZoo_OrbitTrajectory", "VividZoo_CamerasFromJSON", "VividZoo_CameraPreview",
    "VividZoo_EmptyMultiViewVideoLatent", "VividZoo_ApplyVividZoo", "VividZoo_Sampler",
    "VividZoo_MultiViewVideoCombine", "VividZoo_SelectView", "VividZoo_ViewsToGrid", "VividZoo_MVDreamCameras",
    "VividZoo_Animate3DLoader", "VividZoo_Animate3DViews", "VividZoo_Animate3DCondition", "VividZoo_FreeInit",
    "VividZoo_ReconstructionModelLoader", "VividZoo_MultiViewVideoToGaussians", "VividZoo_SaveGaussianSequence",
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
    prompt_id, refused = comfy_server.queue(
        graph(frames=4, steps=STEPS.high, sampler="vividzoo", prefix="VividZoo/cancel")
    )
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
        prompt["9"] = {
            "class_type": "KSamplerAdvanced",
            "inputs": {
                **common,
                "add_noise": "enable",
                "noise_seed": 3,
                "steps": 2,
                "sampler_name": "ddim",
                "scheduler": "ddim_uniform",
                "start_at_step": 0,
                "end_at_step": 10000,
                "return_with_leftover_noise": "disable",
            },
        }
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
    prompt["13"] = {
        "class_type": "SaveAnimatedWEBP",
        "inputs": {
            "images": ["12", 0],
            "filename_prefix": "VividZoo/view2",
            "fps": 8.0,
            "lossless": False,
            "quality": 80,
            "method": "default",
        },
    }
    prompt["14"] = {"class_type": "VividZoo_ViewsToGrid", "inputs": {"images": ["10", 0], "views": 4, "columns": 2}}
    prompt["15"] = {"class_type": "PreviewImage", "inputs": {"images": ["14", 0]}}
    prompt["16"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["14", 0], "vae": ["1", 2]}}
    prompt["17"] = {
        "class_type": "VAEDecodeTiled",
        "inputs": {
            "samples": ["16", 0],
            "vae": ["1", 2],
            "tile_size": 64,
            "overlap": 32,
            "temporal_size": 64,
            "temporal_overlap": 8,
        },
    }
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


# -- Animate3D ---------------------------------------------------------------------------------------------

IN_THE_FILE = "none (in the Animate3D file)"


def animate3d_graph(frames=3, steps=2, free_init=2, animate3d=ANIMATE3D_NAME, ip_adapter=IP_ADAPTER_NAME,
                    clip_vision=CLIP_VISION_NAME, views=4, view_width=64, view_height=64, prefix="VividZoo/animate3d"):
    """An API-format Animate3D graph on the test weights: 4 grey views of ``view_width`` x ``view_height``."""
    prompt = graph(frames=frames, steps=steps, prefix=prefix)
    for unused in ("4", "5", "7", "8"):
        del prompt[unused]
    prompt["6"]["inputs"]["azimuth_start"] = 90.0  # Animate3D's condition cameras, for cameras.json
    prompt.update({
        "20": {"class_type": "VividZoo_Animate3DLoader", "inputs": {
            "animate3d_name": animate3d, "ip_adapter_name": ip_adapter, "clip_vision_name": clip_vision}},
        "21": {"class_type": "EmptyImage", "inputs": {"width": view_width, "height": view_height, "batch_size": views,
                                                      "color": 0x8040C0}},
        "22": {"class_type": "VividZoo_Animate3DCondition", "inputs": {
            "model": ["1", 0], "animate3d": ["20", 0], "vae": ["1", 2], "images": ["21", 0], "frames": frames,
            "width": 64, "height": 64, "ip_scale": 1.0}},
        "23": {"class_type": "VividZoo_FreeInit", "inputs": {"model": ["22", 0], "free_init_iterations": free_init}},
    })
    prompt["9"]["inputs"].update(model=["23", 0], latent_image=["22", 1])
    return prompt


def preview_pixels(server, entry: dict, node: str, folder: str = "temp"):
    import numpy as np
    from PIL import Image

    return [np.asarray(Image.open(server.base / folder / image["subfolder"] / image["filename"]).convert("RGB"),
                       dtype=np.int16) for image in entry["outputs"][node]["images"]]


def test_animate3d_video_keeps_the_condition_views_as_frame_0(comfy_server):
    """Through the stock KSampler with FreeInit: a video of every frame, whose frame 0 decodes to the views' own
    VAE round trip (the clean condition latents), in ComfyUI's output folder with Animate3D's cameras."""
    prompt = animate3d_graph(frames=3, prefix="VividZoo/animate3d_frame0")
    prompt["30"] = {"class_type": "ImageFromBatch", "inputs": {"image": ["10", 0], "batch_index": 0, "length": 4}}
    prompt["31"] = {"class_type": "PreviewImage", "inputs": {"images": ["30", 0]}}
    prompt["32"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["21", 0], "vae": ["1", 2]}}
    prompt["33"] = {"class_type": "VAEDecode", "inputs": {"samples": ["32", 0], "vae": ["1", 2]}}
    prompt["34"] = {"class_type": "PreviewImage", "inputs": {"images": ["33", 0]}}
    prompt["35"] = {"class_type": "ImageFromBatch", "inputs": {"image": ["10", 0], "batch_index": 4, "length": 4}}
    prompt["36"] = {"class_type": "PreviewImage", "inputs": {"images": ["35", 0]}}
    entry = comfy_server.run(prompt)
    assert entry["status"]["status_str"] == "success", error_message(entry)
    assert saved_grid_frames(comfy_server, entry) == 3
    first, round_trip, second = (preview_pixels(comfy_server, entry, node) for node in ("31", "34", "36"))
    for ours, theirs in zip(first, round_trip):
        assert abs(ours - theirs).max() <= 1
    assert max(abs(a - b).max() for a, b in zip(second, round_trip)) > 10  # frame 1 is generated, not the views


def test_both_forms_of_the_animate3d_file_give_the_same_video(comfy_server):
    """The whole-UNet form (its UNet and IP-Adapter set over MVDream's) holds the same tensors as the modules-only
    form plus the IP-Adapter file in the test weights: the same video."""
    frames = {}
    for name, animate3d, ip_adapter in (("modules", ANIMATE3D_NAME, IP_ADAPTER_NAME),
                                        ("whole", ANIMATE3D_FULL_NAME, IN_THE_FILE)):
        prompt = animate3d_graph(frames=2, free_init=1, animate3d=animate3d, ip_adapter=ip_adapter,
                                 prefix=f"VividZoo/animate3d_{name}")
        prompt["31"] = {"class_type": "PreviewImage", "inputs": {"images": ["10", 0]}}
        entry = comfy_server.run(prompt)
        assert entry["status"]["status_str"] == "success", error_message(entry)
        frames[name] = preview_pixels(comfy_server, entry, "31")
    assert max(abs(a - b).max() for a, b in zip(frames["modules"], frames["whole"])) <= 1


@pytest.mark.parametrize("sampler", ["KSamplerAdvanced", "SamplerCustom"])
def test_stock_samplers_run_the_animate3d_model(comfy_server, sampler):
    prompt = animate3d_graph(frames=2, free_init=1, prefix=f"VividZoo/animate3d_{sampler}")
    common = {"model": ["23", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["22", 1], "cfg": 7.5}
    if sampler == "KSamplerAdvanced":
        prompt["9"] = {"class_type": "KSamplerAdvanced", "inputs": {
            **common, "add_noise": "enable", "noise_seed": 3, "steps": 2, "sampler_name": "euler_ancestral",
            "scheduler": "normal", "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    else:
        prompt["12"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m"}}
        prompt["13"] = {"class_type": "BasicScheduler", "inputs": {"model": ["23", 0], "scheduler": "karras",
                                                                   "steps": 2, "denoise": 1.0}}
        prompt["9"] = {"class_type": "SamplerCustom", "inputs": {**common, "add_noise": True, "noise_seed": 3,
                                                                 "sampler": ["12", 0], "sigmas": ["13", 0]}}
    entry = comfy_server.run(prompt)
    assert entry["status"]["status_str"] == "success", error_message(entry)
    assert saved_grid_frames(comfy_server, entry) == 2


def test_cancel_stops_an_animate3d_run_promptly(comfy_server):
    prompt_id, refused = comfy_server.queue(animate3d_graph(frames=3, steps=STEPS.high, free_init=3,
                                                            prefix="VividZoo/animate3d_cancel"))
    assert refused is None
    deadline = time.time() + 120
    while time.time() < deadline and not comfy_server.get("/queue")["queue_running"]:
        time.sleep(0.1)
    time.sleep(5)
    cancelled_at = time.time()
    comfy_server.post("/interrupt")
    entry = comfy_server.wait(prompt_id, timeout=60)
    assert "execution_interrupted" in [event for event, _ in entry["status"]["messages"]]
    assert time.time() - cancelled_at < 10


def with_views_node(prompt: dict, sizes: list[tuple[int, int]]) -> dict:
    """The 4 views as 4 images of the given sizes through 'Animate3D Condition Views'."""
    for index, (width, height) in enumerate(sizes):
        prompt[f"4{index}"] = {"class_type": "EmptyImage", "inputs": {"width": width, "height": height,
                                                                      "batch_size": 1, "color": 0x808080}}
    prompt["24"] = {"class_type": "VividZoo_Animate3DViews", "inputs": {
        name: [f"4{index}", 0] for index, name in enumerate(("front", "left", "back", "right"))}}
    prompt["22"]["inputs"]["images"] = ["24", 0]
    return prompt


@pytest.mark.parametrize(
    "make, node, message",
    [
        (lambda: animate3d_graph(views=3), "VividZoo_Animate3DCondition", "exactly 4 views of the object"),
        (
            lambda: with_views_node(animate3d_graph(), [(64, 64)] * 3 + [(48, 64)]),
            "VividZoo_Animate3DViews",
            "the 4 views must have the same size, got 64x64, 64x64, 64x64, 48x64",
        ),
        (lambda: animate3d_graph(frames=33), "VividZoo_Animate3DCondition", "frames must be 2 to 32"),
        (
            lambda: animate3d_graph(view_width=64, view_height=32),
            "VividZoo_Animate3DCondition",
            "the condition views are 64x32 but the video is 64x64",
        ),
        (
            lambda: animate3d_graph(ip_adapter=SDXL_IP_ADAPTER_NAME),
            "VividZoo_Animate3DLoader",
            "this is an SDXL IP-Adapter",
        ),
        (
            lambda: animate3d_graph(clip_vision=WIDE_CLIP_VISION_NAME),
            "VividZoo_Animate3DLoader",
            f"gives 48-wide image embeddings but {IP_ADAPTER_NAME} reads 32-wide ones",
        ),
        (
            lambda: animate3d_graph(animate3d=ALIGNMENT_NAME),
            "VividZoo_Animate3DLoader",
            "this is a Vivid-ZOO alignment file, not Animate3D's model",
        ),
        (lambda: graph(motion=ANIMATE3D_NAME), "VividZoo_MotionModuleLoader", "this is Animate3D's trained model"),
        (lambda: animate3d_graph(ip_adapter=IN_THE_FILE), "VividZoo_Animate3DLoader", "holds only Animate3D's modules"),
    ],
    ids=[
        "three_views",
        "views_of_different_sizes",
        "too_many_frames",
        "aspect_ratio",
        "sdxl_ip_adapter",
        "clip_vision_width",
        "alignment_as_animate3d",
        "animate3d_as_motion_module",
        "modules_without_ip_adapter",
    ],
)
def test_bad_animate3d_inputs_are_one_line_node_errors(comfy_server, make, node, message):
    entry = comfy_server.run(make())
    assert entry["status"]["status_str"] == "error"
    text = error_message(entry)
    assert text.startswith(node) and message in text and "\n" not in text.strip(), text



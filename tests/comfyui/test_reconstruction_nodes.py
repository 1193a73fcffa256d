"""The reconstruction nodes in a running ComfyUI: the same Gaussians as the standalone pipeline, the files, and
bad inputs as one-line node errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_server import error_message

from vividzoo_core.cameras import orbit
from vividzoo_core.checkpoints.reconstruction import LGM
from vividzoo_core.gaussian_sequence import MANIFEST_FILE, TURNTABLE_MP4, ply_name
from vividzoo_core.gaussians import read_ply
from vividzoo_core.reconstruction_inputs import ReconstructionInput
from vividzoo_core.reconstruction_pipeline import ReconstructionPipeline
from vividzoo_core.synthetic_reconstruction_weights import FILE_NAMES, write_lgm_test_weights
from vividzoo_core.video import INFO_FILE

SIZE = 64
COLOR = 0x4080C0
PREFIX = "VividZoo/test_gaussians"


def reconstruction_graph(frames: int = 2, model: str = FILE_NAMES[LGM], interpolation: str | None = None,
                         views: int = 4, moving_views: bool = False, input_size: int = SIZE,
                         images: int | None = None) -> dict:
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": SIZE, "height": SIZE,
                                                     "batch_size": images or frames * 4, "color": COLOR}},
        "2": {"class_type": "VividZoo_OrbitCameras",
              "inputs": {"views": views, "elevation": 0.0, "azimuth_start": 0.0, "azimuth_span": 360.0}},
        "3": {"class_type": "VividZoo_ReconstructionModelLoader", "inputs": {"model_name": model}},
        "5": {"class_type": "VividZoo_MultiViewVideoToGaussians",
              "inputs": {"images": ["1", 0], "cameras": ["2", 0], "model": ["3", 0], "fps": 8.0,
                         "moving_views": moving_views, "score": True, "input_size": input_size}},
        "6": {"class_type": "VividZoo_SaveGaussianSequence",
              "inputs": {"gaussians": ["5", 0], "filename_prefix": PREFIX, "preview": True}},
    }
    if interpolation is not None:
        prompt["4"] = {"class_type": "VividZoo_ReconstructionModelLoader", "inputs": {"model_name": interpolation}}
        prompt["5"]["inputs"]["interpolation"] = ["4", 0]
    return prompt


def test_the_nodes_give_the_standalone_pipeline_s_gaussians(comfy_server, tmp_path):
    entry = comfy_server.run(reconstruction_graph())
    assert entry["status"]["status_str"] == "success", error_message(entry)
    folders = sorted((comfy_server.base / "output" / "VividZoo").glob("test_gaussians_*_"))
    folder = folders[-1]
    assert (folder / MANIFEST_FILE).is_file() and (folder / TURNTABLE_MP4).is_file()
    info = json.loads((folder / INFO_FILE).read_text())
    assert info["output_to_input_frame"] == [0, 1] and len(info["score"]["psnr_db"]) == 2
    # The same file (the harness writes write_lgm_test_weights' seeded files), the same frames and cameras here.
    files = write_lgm_test_weights(tmp_path)
    pipeline = ReconstructionPipeline.from_files(LGM, files[LGM], device="cpu", input_size=SIZE)
    rgb = torch.tensor([(COLOR >> shift & 0xFF) / 0xFF for shift in (16, 8, 0)])
    video = ReconstructionInput(rgb.expand(2, 4, SIZE, SIZE, 3).clone(), orbit(4, 0.0), 8.0, tmp_path)
    expected = pipeline.reconstruct(video, score=False)
    for frame in range(2):
        saved = read_ply(folder / ply_name(frame))
        kept = expected.gaussians[frame][expected.gaussians[frame][:, 3] >= 0.005]
        # Another process and perhaps another torch build: float32 rounding of the tiny network (values ~1), far
        # below what a wrong input, camera or kind changes (order 0.1 and more).
        np.testing.assert_allclose(saved.numpy(), kept.numpy(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("change, node, message", [
    ({"model": FILE_NAMES["l4gm_interp"]}, "VividZoo_MultiViewVideoToGaussians", "connect it to 'interpolation'"),
    ({"model": FILE_NAMES["l4gm"], "interpolation": FILE_NAMES[LGM]}, "VividZoo_MultiViewVideoToGaussians",
     "not L4GM's 4-frame interpolation model"),
    ({"moving_views": True}, "VividZoo_MultiViewVideoToGaussians", "moving_views is an L4GM option"),
    ({"interpolation": FILE_NAMES["l4gm_interp"]}, "VividZoo_MultiViewVideoToGaussians",
     "use it with L4GM (recon.safetensors), not LGM"),
    ({"images": 6}, "VividZoo_MultiViewVideoToGaussians", "6 images are not a whole number of frames of 4 views"),
    ({"input_size": 256}, "VividZoo_MultiViewVideoToGaussians", "square frames of 256 px"),
    ({"views": 3}, "VividZoo_MultiViewVideoToGaussians", "the cameras have 3 views but the video has 4"),
    ({"frames": 1, "model": FILE_NAMES["l4gm"], "interpolation": FILE_NAMES["l4gm_interp"]},
     "VividZoo_MultiViewVideoToGaussians", "the interpolation model needs at least 2"),
])
def test_bad_inputs_are_one_line_node_errors(comfy_server, change, node, message):
    entry = comfy_server.run(reconstruction_graph(**change))
    assert entry["status"]["status_str"] == "error"
    text = error_message(entry)
    assert text.startswith(node) and message in text and "\n" not in text.strip(), text


def test_an_input_size_out_of_range_is_refused_at_validation(comfy_server):
    entry = comfy_server.run(reconstruction_graph(input_size=16))
    assert "5" in entry["refused"]["node_errors"], entry

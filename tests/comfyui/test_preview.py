"""While the Vivid-ZOO Sampler samples, ComfyUI's preview shows all views of one frame as one grid, in a real server.

Tiny weights: 4 views of 64 px (8x8 latents), so the grid is 4 latents wide and 1 high; the server's previewer
(Latent2RGB, asked for in the prompt as the frontend does) turns it into an image 4 times as wide as high.
"""

from __future__ import annotations

import json
import struct
import uuid
from io import BytesIO

import pytest
import websocket  # websocket-client, which comfy-cli (a test extra) requires
from PIL import Image
from workflow_schema import WORKFLOWS

from vividzoo_core.video import grid_columns

PREVIEW_IMAGE = 1  # ComfyUI's protocol.BinaryEventTypes


def test_sampler_preview_is_the_views_of_a_frame_side_by_side(comfy_server):
    prompt = json.loads((WORKFLOWS / "api" / "vividzoo_text_to_multiview_video.json").read_text())
    views = prompt["7"]["inputs"]["views"]
    prompt["7"]["inputs"].update(frames=3, width=64, height=64)
    prompt["8"]["inputs"]["steps"] = 3
    client = str(uuid.uuid4())
    connection = websocket.create_connection(f"ws://127.0.0.1:{comfy_server.port}/ws?clientId={client}", timeout=600)
    try:
        reply = comfy_server.post("/prompt", {"prompt": prompt, "client_id": client,
                                              "extra_data": {"preview_method": "latent2rgb"}})
        previews = []
        while True:
            message = connection.recv()
            if isinstance(message, bytes):
                if struct.unpack(">I", message[:4])[0] == PREVIEW_IMAGE:
                    previews.append(Image.open(BytesIO(message[8:])).size)
                continue
            event = json.loads(message)
            if event["type"] == "execution_error":
                pytest.fail(str(event["data"]))
            if event["type"] == "executing" and event["data"].get("node") is None and \
                    event["data"].get("prompt_id") == reply["prompt_id"]:
                break
    finally:
        connection.close()
    assert len(previews) == 3  # one per step
    assert grid_columns(views) == views == 4
    for width, height in previews:
        assert width == views * height, previews  # the first image alone would be square

"""A real ComfyUI for the integration tests, isolated in a temporary base directory.

Set ``VIVIDZOO_COMFYUI`` to a ComfyUI checkout (tested: v0.12.1) and, if its Python is not
``<checkout>/.venv/bin/python``, ``VIVIDZOO_COMFYUI_PYTHON``. Without it these tests are skipped
with a loud notice, so CI on a fresh machine still passes.

The server runs headless on the CPU with ``--base-directory`` pointing to a temporary folder that
holds only this pack (linked) and random tiny weights under the real file names.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from vividzoo_core.checkpoints.clip_vision import ClipVisionShape
from vividzoo_core.checkpoints.files import COMFYUI_FOLDERS
from vividzoo_core.checkpoints.mvdream import UNET_PREFIX
from vividzoo_core.synthetic_reconstruction_weights import write_lgm_test_weights
from vividzoo_core.synthetic_weights import (
    TINY_CLIP_VISION,
    TINY_SD15,
    animate3d_full_state_dict,
    animate3d_state_dict,
    clip_vision_spec,
    ip_adapter_state_dict,
    materialise,
    mvdream_state_dict,
    synthetic_condition_views,
    write_animate3d_files,
    write_test_weights,
)

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = "ComfyUI-VividZoo"
SKIP_REASON = (
    "ComfyUI integration tests SKIPPED: set VIVIDZOO_COMFYUI to a ComfyUI checkout (v0.12.1) to run them"
)
COMFY_CLI_ENV = {"DO_NOT_TRACK": "1", "COMFY_NO_UPDATE_CHECK": "1", "COMFY_KNOWLEDGE_FILE": os.devnull}
# Names the shipped workflows use, so the tests run them unchanged apart from sizes.
MVDREAM_NAME = "sd-v1.5-4view.pt"
MOTION_NAME = "mm_sd_v15_v2.ckpt"
ALIGNMENT_NAME = "vividzoo_alignment_v2.safetensors"
PLAIN_SD_NAME = "v1-5-pruned-emaonly.safetensors"
LORA_NAME = "tiny_sd15_lora.safetensors"
ANIMATE3D_NAME = "animate3d_motion_modules.ckpt"
ANIMATE3D_FULL_NAME = "animate3d_whole_unet.ckpt"
IP_ADAPTER_NAME = "ip-adapter_sd15.safetensors"
CLIP_VISION_NAME = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
SDXL_IP_ADAPTER_NAME = "ip-adapter_sdxl_vit-h.safetensors"
WIDE_CLIP_VISION_NAME = "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors"
CONDITION_VIEW_NAMES = tuple(f"animate3d_{view}.png" for view in ("front", "left", "back", "right"))


def comfyui_dir() -> Path | None:
    value = os.environ.get("VIVIDZOO_COMFYUI")
    return Path(value) if value else None


def comfyui_python(root: Path) -> str:
    configured = os.environ.get("VIVIDZOO_COMFYUI_PYTHON")
    if configured:
        return configured
    venv = root / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


@dataclass
class ComfyServer:
    url: str
    port: int
    base: Path
    log: Path
    root: Path
    python: str

    def get(self, route: str):
        return json.loads(urllib.request.urlopen(self.url + route, timeout=30).read())

    def post(self, route: str, payload: dict | None = None):
        data = json.dumps(payload or {}).encode()
        request = urllib.request.Request(self.url + route, data, {"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(request, timeout=30).read() or b"{}")

    def queue(self, prompt: dict) -> tuple[str | None, dict | None]:
        """``(prompt_id, None)`` if accepted, ``(None, error body)`` if the server refused it."""
        try:
            reply = self.post("/prompt", {"prompt": prompt, "client_id": str(uuid.uuid4())})
        except urllib.error.HTTPError as error:
            return None, json.loads(error.read())
        return reply["prompt_id"], None

    def wait(self, prompt_id: str, timeout: float = 600) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            history = self.get(f"/history/{prompt_id}")
            entry = history.get(prompt_id)
            if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
                return entry
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s")

    def run(self, prompt: dict, timeout: float = 600) -> dict:
        prompt_id, refused = self.queue(prompt)
        if refused:
            return {"refused": refused}
        return self.wait(prompt_id, timeout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_weights(base: Path, scratch: Path) -> None:
    files = write_test_weights(scratch)
    models = base / "models"
    for folder in ("vividzoo", "animatediff_models", "checkpoints"):
        (models / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy(files.mvdream, models / "vividzoo" / MVDREAM_NAME)
    shutil.copy(files.alignment, models / "vividzoo" / ALIGNMENT_NAME)
    shutil.copy(files.motion["v2"], models / "animatediff_models" / MOTION_NAME)
    shutil.copy(files.motion["v1"], models / "animatediff_models" / "mm_sd_v15.ckpt")
    plain = {k: v for k, v in mvdream_state_dict(TINY_SD15).items() if ".camera_embed." not in k}
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in plain.items() if isinstance(v, torch.Tensor)},
              str(models / "checkpoints" / PLAIN_SD_NAME))
    (models / "loras").mkdir()
    generator = torch.Generator().manual_seed(7)
    lora = {}
    for key, tensor in plain.items():
        if key.startswith("model.diffusion_model.") and key.endswith(("attn1.to_q.weight", "attn2.to_v.weight")):
            name = "diffusion_model." + key[len("model.diffusion_model."):-len(".weight")]
            lora[f"{name}.lora_up.weight"] = torch.randn(tensor.shape[0], 4, generator=generator) * 0.5
            lora[f"{name}.lora_down.weight"] = torch.randn(4, tensor.shape[1], generator=generator) * 0.5
    save_file(lora, str(models / "loras" / LORA_NAME))
    write_animate3d_weights(models, scratch / "animate3d")
    write_lgm_test_weights(models / COMFYUI_FOLDERS["lgm"])  # the release names the workflows use
    write_condition_views(base / "input")


def write_condition_views(folder: Path) -> None:
    """The 4 view images the 'animate 4 views' workflow loads (Load Image), under its file names."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, view in zip(CONDITION_VIEW_NAMES, synthetic_condition_views(128)):
        Image.fromarray(view).save(folder / name)


def write_animate3d_weights(models: Path, scratch: Path) -> None:
    """Animate3D's files fitting the test MVDream, under the names the workflows use, and wrong ones to refuse: an
    SDXL IP-Adapter, a CLIP image encoder of another width (as ViT-bigG's is), the whole-UNet form."""
    from safetensors.torch import save_file

    files = write_animate3d_files(scratch, TINY_SD15.unet)
    for folder, source, name in (("animatediff_models", files.modules, ANIMATE3D_NAME),
                                 ("ipadapter", files.ip_adapter_safetensors, IP_ADAPTER_NAME),
                                 ("clip_vision", files.clip_vision, CLIP_VISION_NAME)):
        (models / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(source, models / folder / name)
    unet = {k[len(UNET_PREFIX):]: v for k, v in mvdream_state_dict(TINY_SD15).items() if k.startswith(UNET_PREFIX)}
    ip_adapter = ip_adapter_state_dict(TINY_SD15.unet, TINY_CLIP_VISION.projection)
    whole = animate3d_full_state_dict(unet, TINY_SD15.unet, ip_adapter, animate3d_state_dict(TINY_SD15.unet))
    torch.save({"state_dict": whole, "global_step": 0}, models / "animatediff_models" / ANIMATE3D_FULL_NAME)
    # SDXL's IP-Adapter: 70 cross-attention layers reading 2048-wide tokens (tiny outputs keep the file small)
    sdxl = {"image_proj.proj.weight": torch.zeros(4 * 2048, 8), "image_proj.proj.bias": torch.zeros(4 * 2048),
            "image_proj.norm.weight": torch.ones(2048), "image_proj.norm.bias": torch.zeros(2048)}
    for i in range(70):
        for projection in ("to_k_ip", "to_v_ip"):
            sdxl[f"ip_adapter.{2 * i + 1}.{projection}.weight"] = torch.zeros(1, 2048)
    save_file(sdxl, str(models / "ipadapter" / SDXL_IP_ADAPTER_NAME))
    wide = ClipVisionShape(**{**TINY_CLIP_VISION.__dict__, "projection": 48})
    save_file(materialise(clip_vision_spec(wide), torch.Generator().manual_seed(8)),
              str(models / "clip_vision" / WIDE_CLIP_VISION_NAME))


def comfy_cli() -> str:
    executable = shutil.which("comfy", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    if not executable:
        pytest.fail("comfy-cli is not installed; install the test extras: pip install -e '.[test]'")
    return executable


def comfy_run(server: ComfyServer, workflow: Path, timeout: int = 600) -> dict:
    """Runs a workflow file the way users script it: ``comfy run --workflow FILE --wait``."""
    result = subprocess.run(
        [comfy_cli(), "--skip-prompt", "run", "--workflow", str(workflow), "--wait", "--host", "127.0.0.1",
         "--port", str(server.port), "--timeout", str(timeout)],
        capture_output=True, text=True, env={**os.environ, **COMFY_CLI_ENV}, timeout=timeout + 60,
    )
    try:
        envelope = json.loads(result.stdout)
    except json.JSONDecodeError:
        envelope = {"ok": False, "raw": result.stdout[-3000:]}
    envelope["returncode"] = result.returncode
    envelope["stderr"] = result.stderr[-3000:]
    return envelope

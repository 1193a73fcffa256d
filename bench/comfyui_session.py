"""ComfyUI imported headless into this process, with this pack loaded as the package ``vividzoo_pack``.

For bench scripts run with ComfyUI's Python (which has ComfyUI's packages and the pack's requirements).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the shared custom-node loader
from custom_nodes import import_custom_nodes  # noqa: E402


def start_comfyui(comfyui: Path, gpu: bool, pytorch_attention: bool = True) -> ModuleType:
    """Imports ComfyUI from ``comfyui`` (CPU unless ``gpu``) and the pack; returns the pack module.

    ``pytorch_attention`` selects PyTorch's SDPA, which ComfyUI uses on NVIDIA GPUs by default and the
    standalone pipeline uses everywhere (ComfyUI's CPU default is sub-quadratic attention).
    """
    sys.path.insert(0, str(comfyui))
    from comfy.cli_args import args

    args.cpu = not gpu
    args.use_pytorch_cross_attention = pytorch_attention
    return import_custom_nodes(REPO)

"""Reading checkpoint files safely: tensors only, never code, with errors that name the file."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pt", ".ckpt", ".pth", ".bin")
SUPPORTED_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES
COMFYUI_FOLDERS = {"mvdream": "vividzoo", "alignment": "vividzoo", "motion": "animatediff_models",
                   "animate3d": "animatediff_models", "ipadapter": "ipadapter", "clipvision": "clip_vision",
                   "lgm": "lgm", "l4gm": "lgm"}
"""The folder under ``ComfyUI/models`` each kind of file lives in: ``animatediff_models`` as AnimateDiff-Evolved
has it, ``ipadapter`` as ComfyUI_IPAdapter_plus, ``clip_vision`` as ComfyUI itself, ``vividzoo`` the pack's own,
``lgm`` for the reconstruction family (LGM and L4GM's two files: no ComfyUI pack shares a ``models`` folder for
them; ComfyUI-3D-Pack keeps LGM inside its own ``Checkpoints/LGM``)."""


@dataclass
class LoadedFile:
    """The tensors of a checkpoint, its non-tensor entries, and (safetensors) its metadata."""

    path: Path
    tensors: dict[str, torch.Tensor]
    extras: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


def read_checkpoint(path: str | Path) -> LoadedFile:
    """Loads ``.safetensors`` or a pickled ``.pt/.ckpt/.pth/.bin`` with ``weights_only=True``.

    A ``state_dict`` wrapper (training scripts) is unwrapped; non-tensor entries go to ``extras``.
    Pickles that hold code or arbitrary objects are refused without being executed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "file not found" if not path.exists() else "not a file")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _read_safetensors(path)
    if suffix in PICKLE_SUFFIXES:
        return _read_pickle(path)
    raise CheckpointError(
        path, f"unsupported file type {suffix!r}; checkpoints must be one of {', '.join(SUPPORTED_SUFFIXES)}"
    )


def _read_safetensors(path: Path) -> LoadedFile:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            path, f"damaged or incomplete safetensors file ({error}); download it again"
        ) from None
    return LoadedFile(path, tensors, metadata=metadata)


def _read_pickle(path: Path) -> LoadedFile:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        if "weights_only" in str(error) or "Unsupported global" in str(error):
            raise CheckpointError(
                path,
                "refused: the file holds Python objects or code besides tensors, and loading it could "
                "run that code. It was not executed. Use the original release or a .safetensors copy",
            ) from None
        raise CheckpointError(path, f"damaged or not a PyTorch checkpoint ({error})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise CheckpointError(
            path, f"damaged or incomplete file, e.g. an interrupted download ({_first_line(error)}); download it again"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(path, f"expected a dictionary of tensors, found a {type(data).__name__}")
    if isinstance(data.get("state_dict"), dict):
        outer_extras = {k: v for k, v in data.items() if k != "state_dict"}
        data = data["state_dict"]
    else:
        outer_extras = {}
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    extras = {**outer_extras, **{k: v for k, v in data.items() if not isinstance(v, torch.Tensor)}}
    return LoadedFile(path, tensors, extras=extras)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def save_weights(path: Path, state: dict, log: Callable[[str], None]) -> Path:
    """Writes ``state`` to ``path``: ``.safetensors`` for flat tensor dicts, a pickle otherwise (the release
    formats); logs one line."""
    from safetensors.torch import save_file

    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    values = sum(t.numel() for t in state.values() if isinstance(t, torch.Tensor))
    log(f"wrote {path} ({values / 1e6:.1f} M values)")
    return path

"""Where the pack looks for weights: ``models/vividzoo`` (its own), ``models/animatediff_models``, for
Animate3D ``models/ipadapter`` and ComfyUI's ``models/clip_vision``, and ``models/lgm`` for LGM / L4GM.

``animatediff_models`` is AnimateDiff-Evolved's folder and ``ipadapter`` ComfyUI_IPAdapter_plus's; registered here
too (without duplicates) so one copy of a file serves every pack.
"""

from __future__ import annotations

import os

import folder_paths

from ..vividzoo_core.checkpoints.files import COMFYUI_FOLDERS

VIVIDZOO = COMFYUI_FOLDERS["mvdream"]
MOTION = COMFYUI_FOLDERS["motion"]
CHECKPOINTS = "checkpoints"
IP_ADAPTER = COMFYUI_FOLDERS["ipadapter"]
CLIP_VISION = COMFYUI_FOLDERS["clipvision"]
RECONSTRUCTION = COMFYUI_FOLDERS["lgm"]


def register(name: str) -> None:
    """Adds ``models/<name>`` and the model-file extensions, never mutating a set shared with another folder."""
    folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))
    paths, extensions = folder_paths.folder_names_and_paths[name]
    if extensions is folder_paths.supported_pt_extensions or not isinstance(extensions, set):
        extensions = set(extensions)
    extensions.update(folder_paths.supported_pt_extensions)
    folder_paths.folder_names_and_paths[name] = (paths, extensions)


def listed(*names: str) -> list[str]:
    """File names in the given folders, each once, sorted."""
    return sorted({file for name in names for file in folder_paths.get_filename_list(name)})


def full_path(filename: str, *names: str) -> str:
    """The first folder holding ``filename``; the error lists every folder searched."""
    for name in names:
        path = folder_paths.get_full_path(name, filename)
        if path:
            return path
    searched = [p for name in names for p in folder_paths.get_folder_paths(name)]
    raise FileNotFoundError(f"{filename} was not found in {', '.join(searched)}; put it in one of these folders")


def describe(*names: str) -> str:
    return ", ".join(p for name in names for p in folder_paths.get_folder_paths(name))


register(VIVIDZOO)
register(MOTION)
register(IP_ADAPTER)
register(RECONSTRUCTION)

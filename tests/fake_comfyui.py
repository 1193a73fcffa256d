"""A stand-in for what the node modules touch when they are imported, for CI machines without ComfyUI.

It lets the schemas be built and serialised the way ComfyUI v0.12.1 serialises them
(``/object_info``), and the pack's own logic (``nodes/patching.py``'s checks, hooks and window
schedule, the video nodes' IMAGE handling) run on plain tensors: a node's ``execute`` returns a
:class:`NodeOutput` holding its outputs. Nothing here runs a model: everything that runs one is
tested against a real ComfyUI in ``tests/comfyui``, which also checks the stored ``object_info``
snapshot these schemas are compared with.
"""

from __future__ import annotations

import enum
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from custom_nodes import PACK_PACKAGE as PACKAGE
from custom_nodes import REPO, import_custom_nodes


class _Anything:
    """Placeholder for any ComfyUI class or function the modules only reference at import time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        submodule = sys.modules.get(f"{self.__name__}.{name}")
        return submodule if submodule is not None else type(name, (_Anything,), {})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == "comfy" or name.startswith("comfy."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StubModule(spec.name)

    def exec_module(self, module):
        module.__path__ = []


# -- comfy_api.latest: schemas and their /object_info serialisation -------------------------------

class _NumberDisplay(enum.Enum):
    number = "number"
    slider = "slider"


@dataclass
class _Input:
    io_type: str
    id: str
    optional: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def as_spec(self) -> list[Any]:
        return [self.io_type, {k: v for k, v in self.options.items() if v is not None}]


def _comfy_type(io_type: str, widget_keys: tuple[str, ...] = ()) -> type:
    renames = {"display_mode": "display", "dynamic_prompts": "dynamicPrompts"}

    def input_(id: str, *args: Any, optional: bool = False, display_name=None, tooltip=None, **kwargs: Any) -> _Input:
        if args:  # Combo's options come positionally
            kwargs["options"] = args[0]
        unknown = set(kwargs) - set(widget_keys) - {"options"}
        if unknown:
            raise TypeError(f"{io_type}.Input got unexpected keywords {sorted(unknown)}")
        options = {renames.get(k, k): (v.value if isinstance(v, enum.Enum) else v) for k, v in kwargs.items()}
        if io_type == "COMBO":
            options["multiselect"] = False
        if io_type == "STRING":
            options.setdefault("multiline", False)
        options["tooltip"] = tooltip
        return _Input(io_type, id, optional, options)

    def output(id=None, display_name=None, tooltip=None, is_output_list=False) -> tuple[str, str]:
        return io_type, display_name or id or io_type

    return type(io_type, (), {"io_type": io_type, "Input": staticmethod(input_), "Output": staticmethod(output)})


@dataclass
class _Schema:
    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    description: str = ""
    search_aliases: list = field(default_factory=list)
    is_output_node: bool = False


class _ComfyNode:
    @classmethod
    def GET_SCHEMA(cls) -> _Schema:
        return cls.define_schema()


class NodeOutput:
    """Keeps a node's outputs, like ComfyUI's ``io.NodeOutput.result``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.result = args


class _Hidden(enum.Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"


def _make_io() -> types.ModuleType:
    io = types.ModuleType("comfy_api.latest.io")
    number = ("default", "min", "max", "step", "display_mode")
    io.Int = _comfy_type("INT", number + ("control_after_generate",))
    io.Float = _comfy_type("FLOAT", number + ("round",))
    io.String = _comfy_type("STRING", ("default", "multiline", "placeholder", "dynamic_prompts"))
    io.Boolean = _comfy_type("BOOLEAN", ("default", "label_on", "label_off"))
    io.Combo = _comfy_type("COMBO", ("default", "control_after_generate"))
    for name, io_type in (("Model", "MODEL"), ("Clip", "CLIP"), ("Vae", "VAE"), ("Latent", "LATENT"),
                          ("Image", "IMAGE"), ("Conditioning", "CONDITIONING"), ("Video", "VIDEO"),
                          ("ClipVision", "CLIP_VISION")):
        setattr(io, name, _comfy_type(io_type))
    io.Custom = lambda io_type: _comfy_type(io_type)
    io.Schema, io.ComfyNode, io.Hidden, io.NumberDisplay = _Schema, _ComfyNode, _Hidden, _NumberDisplay
    io.NodeOutput = NodeOutput
    io.FolderType = enum.Enum("FolderType", {"input": "input", "output": "output", "temp": "temp"})
    return io


def node_info(node_class: type) -> dict[str, Any]:
    """A node's ``/object_info`` entry, as ComfyUI builds it from a V3 schema (the parts workflows use)."""
    schema = node_class.GET_SCHEMA()
    sections: dict[str, dict[str, Any]] = {}
    order: dict[str, list[str]] = {}
    for item in schema.inputs:
        section = "optional" if item.optional else "required"
        sections.setdefault(section, {})[item.id] = item.as_spec()
        order.setdefault(section, []).append(item.id)
    hidden = list(schema.hidden)
    if schema.is_output_node:  # ComfyUI gives every output node the prompt and workflow
        hidden += [h for h in (_Hidden.prompt, _Hidden.extra_pnginfo) if h not in hidden]
    if hidden:
        order["hidden"] = [h.name for h in hidden]
    return {
        "input": sections,
        "input_order": order,
        "output": [io_type for io_type, _ in schema.outputs],
        "output_name": [name for _, name in schema.outputs],
        "category": schema.category,
        "output_node": schema.is_output_node,
        "description": schema.description,
        "display_name": schema.display_name,
    }


# -- installing and importing ---------------------------------------------------------------------

def _modules(snapshot: dict[str, Any]) -> dict[str, types.ModuleType]:
    latest = types.ModuleType("comfy_api.latest")
    latest.io = _make_io()
    latest.ui = types.ModuleType("comfy_api.latest.ui")
    latest.ComfyExtension = type("ComfyExtension", (), {})
    latest.InputImpl = latest.Types = _StubModule("comfy_api.latest.types")
    comfy_api = types.ModuleType("comfy_api")
    comfy_api.latest = latest

    folder_paths = types.ModuleType("folder_paths")
    folder_paths.supported_pt_extensions = {".ckpt", ".pt", ".safetensors"}
    folder_paths.models_dir = "/nonexistent/models"
    folder_paths.folder_names_and_paths = {}

    def add_model_folder_path(name: str, path: str, is_default: bool = False) -> None:
        folder_paths.folder_names_and_paths.setdefault(name, ([], set()))[0].append(path)

    folder_paths.add_model_folder_path = add_model_folder_path
    folder_paths.get_filename_list = lambda name: []
    folder_paths.get_folder_paths = lambda name: folder_paths.folder_names_and_paths.get(name, ([], set()))[0]
    folder_paths.get_full_path = lambda name, filename: None

    samplers = _StubModule("comfy.samplers")
    sampling = snapshot["KSampler"]["input"]["required"]  # a V1 node: combo options come first
    samplers.KSampler = type("KSampler", (), {"SAMPLERS": sampling["sampler_name"][0],
                                              "SCHEDULERS": sampling["scheduler"][0]})
    supported_models = _StubModule("comfy.supported_models")
    supported_models.SD15 = type("SD15", (_Anything,), {"unet_config": {"context_dim": 768, "adm_in_channels": None}})
    supported_models.SD20 = type("SD20", (_Anything,), {"unet_config": {"context_dim": 1024, "adm_in_channels": None}})
    return {"comfy_api": comfy_api, "comfy_api.latest": latest, "comfy_api.latest.io": latest.io,
            "comfy_api.latest.ui": latest.ui, "folder_paths": folder_paths, "comfy.samplers": samplers,
            "comfy.supported_models": supported_models}


@contextmanager
def pack_with_fake_comfyui(snapshot: dict[str, Any]) -> Iterator[types.ModuleType]:
    """Imports this repository as a ComfyUI custom-node package with the stand-ins; cleans up after."""
    before = set(sys.modules)
    finder = _StubFinder()
    sys.meta_path.insert(0, finder)
    sys.modules.update(_modules(snapshot))
    try:
        yield import_custom_nodes(REPO, PACKAGE)
    finally:
        sys.meta_path.remove(finder)
        # Only the pack and the stand-ins go: real libraries first imported meanwhile (diffusers, transformers) stay,
        # as importing them twice in one process fails (torch registers their operators once).
        stand_ins = (PACKAGE, "comfy", "comfy_api", "folder_paths")
        for name in set(sys.modules) - before:
            if name.split(".")[0] in stand_ins:
                del sys.modules[name]

"""Reading UI-format workflows against node schemas (ComfyUI's /object_info format).

UI workflows store widget values by position: the widget inputs of a node in schema order (required,
then optional), with an extra "control_after_generate" value after a seed-like INT.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
SNAPSHOT = Path(__file__).with_name("data") / "object_info.json"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Combo inputs listing model (or input image) files: their options depend on the installation, not on the schema.
FILE_WIDGETS = {"ckpt_name", "model_name", "alignment_name", "lora_name", "vae_name", "clip_name", "animate3d_name",
                "ip_adapter_name", "clip_vision_name", "image"}
FILE_LIST = "<files in the model folder>"
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
NOTE_TYPES = ("MarkdownNote", "Note")
"""Frontend-only nodes: drawn on the canvas, never sent to the server (no schema, not in the API copies)."""
UPLOAD_VALUE = "image"
"""What the frontend stores for the upload button of an ``image_upload`` combo (Load Image), after the file name."""


def shipped_workflows() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def server_nodes(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """The nodes that run: all but the notes."""
    return [node for node in workflow["nodes"] if node["type"] not in NOTE_TYPES]


def widgets(node_info: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    """``(name, type, options)`` of each widget value slot, in the order UI workflows store them."""
    slots = []
    order = node_info.get("input_order") or {s: list(node_info["input"].get(s, {})) for s in ("required", "optional")}
    for section in ("required", "optional"):
        for name in order.get(section, []):
            spec = node_info["input"][section][name]
            kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
            if (isinstance(kind, list) or kind in WIDGET_TYPES or kind == FILE_LIST) and not options.get("forceInput"):
                slots.append((name, kind, options))
                if options.get("control_after_generate"):
                    slots.append(("control_after_generate", "CONTROL", {}))
                if options.get("image_upload"):
                    slots.append(("upload", "UPLOAD", {}))
    return slots


def combo_options(kind: Any, options: dict[str, Any]) -> list[Any]:
    return kind if isinstance(kind, list) else options.get("options", [])


def widget_problems(node: dict[str, Any], node_info: dict[str, Any]) -> list[str]:
    """Why a UI node's widget values do not fit its schema (empty when they fit)."""
    slots = widgets(node_info)
    values = node.get("widgets_values") or []
    label = f"node {node['id']} ({node['type']})"
    if len(values) != len(slots):
        return [f"{label}: {len(values)} widget values, the schema has {len(slots)}: {[s[0] for s in slots]}"]
    problems = []
    for (name, kind, options), value in zip(slots, values):
        where = f"{label}.{name}={value!r}"
        if kind == "CONTROL":
            ok = value in CONTROL_VALUES
        elif kind == "UPLOAD":
            ok = value == UPLOAD_VALUE
        elif kind in ("INT", "FLOAT"):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
                options.get("min", value) <= value <= options.get("max", value)
        elif kind == "BOOLEAN":
            ok = isinstance(value, bool)
        elif kind == "STRING":
            ok = isinstance(value, str)
        elif name in FILE_WIDGETS:
            ok = isinstance(value, str) and value != ""
        else:
            ok = value in combo_options(kind, options)
        if not ok:
            problems.append(f"{where} does not fit {kind} {options if kind != 'COMBO' else ''}".rstrip())
    return problems


def widget_values(node: dict[str, Any], node_info: dict[str, Any]) -> dict[str, Any]:
    """A UI node's widget values by input name (control_after_generate left out)."""
    return {name: value for (name, kind, _), value in zip(widgets(node_info), node.get("widgets_values") or [])
            if kind not in ("CONTROL", "UPLOAD")}


def normalise(node_info: dict[str, Any]) -> dict[str, Any]:
    """The parts of a node schema workflows depend on, with installation-specific file lists masked."""
    inputs = {}
    for section in ("required", "optional"):
        for name, spec in node_info["input"].get(section, {}).items():
            kind, options = spec[0], dict(spec[1]) if len(spec) > 1 else {}
            if name in FILE_WIDGETS and (kind == "COMBO" or isinstance(kind, list)):
                # options and tooltips name this installation's files and folders; an upload button stays
                kind, options = FILE_LIST, {k: v for k, v in options.items() if k == "image_upload"}
            inputs.setdefault(section, {})[name] = [kind, options]
    return {
        "input": inputs,
        "input_order": node_info.get("input_order", {}),
        "output": node_info["output"],
        "output_name": node_info["output_name"],
        "category": node_info.get("category"),
        "output_node": node_info.get("output_node", False),
    }

"""Records ``animate3d_condition_views.json``: the camera setup of Animate3D's 4 condition views, from its own code.

    python tests/data/record_animate3d_condition_views.py --animate3d PATH/TO/Animate3D [--commit SHA]

PATH is a checkout of github.com/yanqinJiang/Animate3D (kept outside this repository). Importing its modules
needs threestudio's whole environment (CUDA extensions among it), so the script takes the few functions
that make the cameras out of the source files (``ast``) and runs them unchanged, with only their imports
supplied (torch, numpy, math), exactly as written:

- ``animatediff/pipelines/pipeline.py``: ``get_camera``, ``generate_c2w``, ``normalize_camera``; recorded:
  ``get_camera(4)``, the cameras the pipeline gives the model with the 4 condition images.
- ``threestudio/data/uncond.py``: ``RandomCameraDataModuleConfig`` and ``RandomCameraDataset`` (split
  ``test``), with ``threestudio/utils/ops.py``'s ray and projection helpers, configured by the ``data``
  section of ``custom/threestudio-animate3d/configs/visualize_four_view_static.yaml`` (Animate3D's recipe for
  the condition views of a static object); recorded: its cameras (``c2w``, distance, elevation, azimuth,
  field of view) and image size, and the renderer's ``back_ground_color`` from the same file.

Needs numpy, torch and PyYAML.
"""

from __future__ import annotations
import __future__

import argparse
import ast
import dataclasses
import json
import math
import subprocess
import typing
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

OUT = Path(__file__).with_name("animate3d_condition_views.json")
STATIC_CONFIG = "custom/threestudio-animate3d/configs/visualize_four_view_static.yaml"


def definitions(path: Path, names: set[str], namespace: dict[str, typing.Any]) -> dict[str, typing.Any]:
    """Executes the top-level functions and classes ``names`` of ``path`` in ``namespace`` (annotations unevaluated)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = [node for node in tree.body if getattr(node, "name", None) in names]
    missing = names - {node.name for node in nodes}
    if missing:
        raise SystemExit(f"{path}: no {', '.join(sorted(missing))}; is this an Animate3D checkout?")
    code = compile(ast.Module(nodes, type_ignores=[]), str(path), "exec", flags=__future__.annotations.compiler_flag)
    exec(code, namespace)  # noqa: S102 (the reference's own code, the point of this script)
    return namespace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--animate3d", type=Path, required=True, help="a checkout of yanqinJiang/Animate3D")
    parser.add_argument("--commit", help="the checkout's commit (default: git rev-parse HEAD in it)")
    args = parser.parse_args()
    root = args.animate3d
    commit = args.commit or subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                           text=True, check=True).stdout.strip()
    base = {"np": np, "torch": torch, "F": F, "math": math, "dataclass": dataclasses.dataclass,
            "field": dataclasses.field, **{name: getattr(typing, name) for name in ("Any", "List", "Tuple", "Union",
                                                                                    "Optional")}}

    pipeline = definitions(root / "animatediff/pipelines/pipeline.py",
                           {"get_camera", "generate_c2w", "normalize_camera"}, dict(base))
    get_camera_4 = pipeline["get_camera"](4).reshape(-1, 4, 4)

    ops = definitions(root / "threestudio/utils/ops.py",
                      {"get_ray_directions", "get_rays", "get_projection_matrix", "get_mvp_matrix"}, dict(base))
    uncond = definitions(root / "threestudio/data/uncond.py", {"RandomCameraDataModuleConfig", "RandomCameraDataset"},
                         {**base, **ops, "Dataset": torch.utils.data.Dataset})
    static = yaml.safe_load((root / STATIC_CONFIG).read_text(encoding="utf-8"))
    config = uncond["RandomCameraDataModuleConfig"](**static["data"])
    dataset = uncond["RandomCameraDataset"](config, "test")

    record = {
        "source": {"repository": "yanqinJiang/Animate3D", "commit": commit,
                   "files": ["animatediff/pipelines/pipeline.py", "threestudio/data/uncond.py",
                             "threestudio/utils/ops.py", STATIC_CONFIG]},
        "get_camera_4": get_camera_4.tolist(),
        "static_render": {
            "c2w": dataset.c2w.tolist(),
            "camera_distance": dataset.camera_distances.tolist(),
            "elevation_deg": dataset.elevation_deg.tolist(),
            "azimuth_deg": dataset.azimuth_deg.tolist(),
            "fovy_deg": (dataset.fovy * 180 / math.pi).tolist(),
            "width": config.eval_width,
            "height": config.eval_height,
            "back_ground_color": static["system"]["renderer"]["back_ground_color"],
            "renderer_type": static["system"]["renderer_type"],
        },
    }
    OUT.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

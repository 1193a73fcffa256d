"""Records the bytes of LGM's own ``GaussianRenderer.save_ply`` on fixture Gaussians (not shipped, not run by tests).

Writes ``gaussians.npy`` (the ``(1, N, 14)`` float32 input), ``reference.ply`` (what the original wrote) and
``meta.json`` into ``--out``; ``tests/test_gaussian_ply.py`` checks that ``vividzoo_core.gaussians.write_ply``
writes the same bytes.

The original is imported from an outside checkout of 3DTopia/LGM (``--source``) and run unchanged; what it
imports but ``save_ply`` never uses is replaced by empty stand-ins: ``diff_gaussian_rasterization`` (CUDA
only), ``tyro`` (``core/options.py``'s command line), ``cv2`` (imported by ``kiui.op`` for image functions).
The real ``kiui`` (its ``op.inverse_sigmoid``) and ``plyfile`` must be importable. The renderer is made with
``__new__`` because its ``__init__`` puts a tensor on CUDA; ``save_ply`` uses nothing of ``self``.

**Machine independence.** ``save_ply`` takes two float32 logarithms (the inverse sigmoid of the opacity and
``log(scale + 1e-8)``). torch's float32 ``log`` may round differently on AVX2 and AVX512 kernels (and in
the scalar tail of a vectorised loop), so arbitrary inputs could give different bytes on another CPU.
The fixture's random values are therefore drawn only where the exact logarithm (float64 from the exact
float32 argument) lies within 1% of the gap to the neighbouring float32 numbers from a float32 number:
every implementation with an error below 0.99 of that gap (every libm and SLEEF kernel; their bounds are
1 ulp or less) returns that float32, on any CPU. The test finds these values again with the same check
and compares them exactly; the few special values below cannot be chosen so, and are compared exactly
only where the machine's log agrees (one float32 step elsewhere). Everything else in ``save_ply`` (the
clamp, subtraction, division, comparison) is exact IEEE arithmetic.

The fixture holds, besides random values: opacities below, at (float32(0.005) is kept) and just below the
pruning threshold; opacities near 1 and exactly 1 (the clamp); scales of 0, 1e-9 and 1e-8 (the 1e-8 added
before the log); positions at the clamp bounds +-1 (about a sixth); colours at 0 and 1; unit quaternions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import types
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

COUNT = 256
MARGIN = 0.01  # of the gap to the neighbouring float32 numbers


def well_conditioned(argument: np.ndarray) -> np.ndarray:
    """Where float32 ``log(argument)`` is the same for every implementation with error < (1 - MARGIN) gaps."""
    exact = np.log(argument.astype(np.float64))
    nearest = exact.astype(np.float32)
    below = nearest - np.nextafter(nearest, np.float32(-np.inf))
    above = np.nextafter(nearest, np.float32(np.inf)) - nearest
    gap = np.minimum(below, above).astype(np.float64)
    return np.abs(exact - nearest.astype(np.float64)) <= MARGIN * gap


def opacity_log_argument(opacity: np.ndarray) -> np.ndarray:
    """The float32 ratio ``x / (1 - x)`` of kiui's inverse sigmoid (clamp to [1e-6, 1 - 1e-6] as torch does)."""
    clamped = np.clip(opacity, np.float32(1e-6), np.float32(1 - 1e-6)).astype(np.float32)
    return (clamped / (np.float32(1) - clamped)).astype(np.float32)


def scale_log_argument(scale: np.ndarray) -> np.ndarray:
    return (scale + np.float32(1e-8)).astype(np.float32)


def draw(rng: np.random.Generator, count: int, sample, argument) -> np.ndarray:
    """``count`` float32 values from ``sample(n)`` whose log argument is well conditioned."""
    kept: list[np.ndarray] = []
    while sum(len(k) for k in kept) < count:
        values = sample(4096).astype(np.float32)
        kept.append(values[well_conditioned(argument(values))])
    return np.concatenate(kept)[:count]


def fixture_gaussians(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = COUNT
    xyz = rng.uniform(-1.2, 1.2, (n, 3)).clip(-1, 1).astype(np.float32)  # about a sixth at the clamp bounds
    opacity = draw(rng, n, lambda k: 1 / (1 + np.exp(-rng.normal(0, 4, k))), opacity_log_argument)
    special = np.array([0.005, 1.0, 0.999999, 0.9999995, 1e-7, 0.004], dtype=np.float32)
    special = np.append(special, np.nextafter(np.float32(0.005), np.float32(0)))
    opacity[: len(special)] = special
    scale = draw(rng, 3 * n, lambda k: 0.1 * np.log1p(np.exp(rng.normal(-3, 2, k))), scale_log_argument)
    scale = scale.reshape(n, 3)
    tiny = np.array([0.0, 1e-9, 1e-8], dtype=np.float32)
    scale[: len(tiny), 0] = tiny
    rotation = rng.normal(size=(n, 4)).astype(np.float32)
    rotation /= np.linalg.norm(rotation, axis=1, keepdims=True)
    rgb = rng.uniform(-0.1, 1.1, (n, 3)).clip(0, 1).astype(np.float32)
    gaussians = np.concatenate([xyz, opacity[:, None], scale, rotation.astype(np.float32), rgb], axis=1)
    return gaussians[None].astype(np.float32)


def original_renderer(source: Path):
    for name in ("diff_gaussian_rasterization", "tyro", "tyro.extras", "cv2"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["diff_gaussian_rasterization"].GaussianRasterizationSettings = None
    sys.modules["diff_gaussian_rasterization"].GaussianRasterizer = None
    sys.modules["tyro"].extras = sys.modules["tyro.extras"]
    sys.modules["tyro.extras"].subcommand_type_from_defaults = lambda *args, **kwargs: None
    sys.path.insert(0, str(source))
    import kiui.op  # noqa: F401  (kiui 0.3.5's lazy loader misnames its 'op' submodule: load it by name)
    from core.gs import GaussianRenderer  # the original's

    return GaussianRenderer.__new__(GaussianRenderer)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="a checkout of github.com/3DTopia/LGM")
    parser.add_argument("--source-commit", default="unknown")
    parser.add_argument("--out", type=Path, default=Path("tests/data/lgm_ply"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    gaussians = fixture_gaussians()
    np.save(args.out / "gaussians.npy", gaussians)
    renderer = original_renderer(args.source)
    renderer.save_ply(torch.from_numpy(gaussians), str(args.out / "reference.ply"))

    meta = {
        "source": "github.com/3DTopia/LGM core/gs.py GaussianRenderer.save_ply",
        "source_commit": args.source_commit,
        "versions": {name: metadata.version(name) for name in ("torch", "numpy", "plyfile", "kiui")},
        "gaussians": int(gaussians.shape[1]),
        "kept": int((gaussians[0, :, 3] >= np.float32(0.005)).sum()),
        "sha256": {name: sha256(args.out / name) for name in ("gaussians.npy", "reference.ply")},
    }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()

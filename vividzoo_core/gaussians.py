"""3D Gaussians as LGM / L4GM return them, and the standard 3D Gaussian Splatting PLY file.

**The tensor.** A set of Gaussians is a ``(N, 14)`` (or ``(batch, N, 14)``) tensor with the columns of LGM's
``forward_gaussians`` (3DTopia/LGM ``core/models.py``), each AFTER its activation:

=========  =======  ==========================================================
columns    name     value
=========  =======  ==========================================================
0:3        xyz      centre, in the Gaussians' world (y up, LGM's [-1, 1]^3)
3:4        opacity  in (0, 1) (sigmoid)
4:7        scale    standard deviations along the Gaussian's axes (> 0)
7:11       rotation unit quaternion ``(w, x, y, z)``
11:14      rgb      colour in [0, 1]
=========  =======  ==========================================================

**The file.** :func:`write_ply` writes what LGM's ``GaussianRenderer.save_ply`` writes, byte for byte: the
Gaussians with opacity >= 0.005, the activations inverted (inverse sigmoid of the opacity clamped to
[1e-6, 1 - 1e-6], ``log(scale + 1e-8)``, colour as the degree-0 spherical-harmonic coefficient
``(rgb - 0.5) / C0``), as a binary little-endian PLY with one ``vertex`` element of float32 properties
``x y z f_dc_0 f_dc_1 f_dc_2 opacity scale_0 scale_1 scale_2 rot_0 rot_1 rot_2 rot_3``. It is the standard
3DGS layout (the reference implementation's without the zero normals and higher-degree coefficients, which
readers do not need): plyfile, gsplat, SuperSplat and ComfyUI's Gaussian nodes read it.
The arithmetic is the original's, in the same float32 operations, so the bytes are the same.

:func:`read_ply` reads such a file (ours, or any 3DGS PLY: extra properties such as normals or
``f_rest_*`` are ignored) back into the activated ``(N, 14)`` tensor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import VividZooError

COLUMNS = 14
XYZ, OPACITY, SCALE, ROTATION, RGB = slice(0, 3), slice(3, 4), slice(4, 7), slice(7, 11), slice(11, 14)
PRUNE_OPACITY = 0.005
"""Gaussians below this opacity are left out of the file (LGM's ``save_ply``)."""
SH_C0 = 0.28209479177387814
"""The degree-0 real spherical harmonic, ``1 / (2 sqrt(pi))``: colour = ``SH_C0 * f_dc + 0.5``."""
OPACITY_EPS = 1e-6
"""The opacity is clamped to ``[eps, 1 - eps]`` before the inverse sigmoid (kiui's ``inverse_sigmoid``)."""
SCALE_EPS = 1e-8
"""Added to the scale before its logarithm (LGM's ``save_ply``)."""
PLY_PROPERTIES = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                  "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
"""The properties of a written file, in order (all float32)."""
PLY_SUFFIX = ".ply"


def check_gaussians(gaussians: torch.Tensor, what: str = "gaussians") -> torch.Tensor:
    """``gaussians`` as a ``(N, 14)`` tensor; a ``(1, N, 14)`` batch of one is accepted. One-line error otherwise."""
    if gaussians.ndim == 3 and gaussians.shape[0] == 1:
        gaussians = gaussians[0]
    if gaussians.ndim != 2 or gaussians.shape[1] != COLUMNS:
        raise VividZooError(
            f"{what}: expected a (N, {COLUMNS}) tensor of Gaussians (xyz, opacity, scale, rotation, rgb), "
            f"got shape {tuple(gaussians.shape)}"
        )
    if not gaussians.is_floating_point():
        raise VividZooError(f"{what}: expected a floating-point tensor, got {gaussians.dtype}")
    return gaussians


def ply_columns(gaussians: torch.Tensor) -> np.ndarray:
    """The ``(M, 14)`` float32 rows :func:`write_ply` stores: pruned, activations inverted, in file order."""
    gaussians = check_gaussians(gaussians).detach().float().cpu()
    opacity = gaussians[:, OPACITY]
    # The comparison in float32, as the original's tensor-vs-scalar comparison: an opacity of
    # float32(0.005) is kept.
    kept = gaussians[opacity.squeeze(-1) >= PRUNE_OPACITY]
    # Contiguous columns as the original's: torch's vectorised and scalar log may round differently.
    opacity = kept[:, OPACITY].contiguous().clamp(OPACITY_EPS, 1 - OPACITY_EPS)
    logit = torch.log(opacity / (1 - opacity))
    log_scale = torch.log(kept[:, SCALE].contiguous() + SCALE_EPS)
    f_dc = (kept[:, RGB].contiguous() - 0.5) / SH_C0
    rows = torch.cat([kept[:, XYZ], f_dc, logit, log_scale, kept[:, ROTATION]], dim=1)
    return rows.numpy()


def ply_bytes(gaussians: torch.Tensor) -> bytes:
    """The whole PLY file of :func:`write_ply` as bytes."""
    rows = ply_columns(gaussians)
    header = "".join([
        "ply\n",
        "format binary_little_endian 1.0\n",
        f"element vertex {rows.shape[0]}\n",
        *(f"property float {name}\n" for name in PLY_PROPERTIES),
        "end_header\n",
    ])
    return header.encode("ascii") + rows.astype("<f4", copy=False).tobytes(order="C")


def write_ply(gaussians: torch.Tensor, path: str | Path) -> Path:
    """Writes ``(N, 14)`` activated Gaussians as a standard 3DGS PLY (see the module's docstring); returns the path."""
    path = Path(path)
    path.write_bytes(ply_bytes(gaussians))
    return path


def read_ply(path: str | Path) -> torch.Tensor:
    """Reads a binary 3DGS PLY into activated ``(N, 14)`` float32 Gaussians (inverse of :func:`write_ply`).

    Reads ``binary_little_endian`` and ``binary_big_endian`` files whose first element is ``vertex`` with
    ``float``/``double`` properties among which are those of :data:`PLY_PROPERTIES`; others are skipped. The
    activations are applied as LGM's ``load_ply`` does (sigmoid, exp, ``SH_C0 * f_dc + 0.5``). The file's
    rotations are returned as stored (normalise before rendering if they come from elsewhere).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise VividZooError(f"{path.name}: cannot read the Gaussians file ({error}) (file: {path})") from None
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise VividZooError(f"{path.name}: not a PLY file (no 'ply' ... 'end_header' header) (file: {path})")
    header = data[:end].decode("ascii", errors="replace").splitlines()
    order, count, fields = _parse_header(header, path)
    dtype = np.dtype([(name, order + kind) for name, kind in fields])
    body = data[end + len(b"end_header\n"):]
    if len(body) < count * dtype.itemsize:
        raise VividZooError(
            f"{path.name}: the file is cut short: {count} Gaussians need {count * dtype.itemsize} bytes, "
            f"it has {len(body)} (file: {path})"
        )
    vertices = np.frombuffer(body, dtype=dtype, count=count)
    missing = [name for name in PLY_PROPERTIES if name not in dtype.names]
    if missing:
        raise VividZooError(
            f"{path.name}: not a 3D Gaussian Splatting PLY, missing properties {missing} (file: {path})"
        )
    columns = np.stack([vertices[name].astype(np.float32) for name in PLY_PROPERTIES], axis=1)
    stored = torch.from_numpy(columns)
    gaussians = torch.empty(count, COLUMNS)
    gaussians[:, XYZ] = stored[:, 0:3]
    gaussians[:, RGB] = SH_C0 * stored[:, 3:6] + 0.5
    gaussians[:, OPACITY] = torch.sigmoid(stored[:, 6:7])
    gaussians[:, SCALE] = torch.exp(stored[:, 7:10])
    gaussians[:, ROTATION] = stored[:, 10:14]
    return gaussians


_PLY_TYPES = {"float": "f4", "float32": "f4", "double": "f8", "float64": "f8", "uchar": "u1", "uint8": "u1",
              "char": "i1", "int8": "i1", "ushort": "u2", "uint16": "u2", "short": "i2", "int16": "i2",
              "uint": "u4", "uint32": "u4", "int": "i4", "int32": "i4"}


def _parse_header(lines: list[str], path: Path) -> tuple[str, int, list[tuple[str, str]]]:
    where = f"(file: {path})"
    formats = [line.split() for line in lines if line.startswith("format ")]
    orders = {"binary_little_endian": "<", "binary_big_endian": ">"}
    if len(formats) != 1 or len(formats[0]) < 2 or formats[0][1] not in orders:
        found = formats[0][1] if formats and len(formats[0]) > 1 else "none"
        raise VividZooError(f"{path.name}: only binary PLY files are read, this one's format is {found} {where}")
    elements = [i for i, line in enumerate(lines) if line.startswith("element ")]
    if not elements or lines[elements[0]].split()[1:2] != ["vertex"]:
        raise VividZooError(f"{path.name}: the first element of a Gaussians PLY must be 'vertex' {where}")
    first = lines[elements[0]].split()
    stop = elements[1] if len(elements) > 1 else len(lines)
    fields = []
    for line in lines[elements[0] + 1 : stop]:
        parts = line.split()
        if not parts or parts[0] != "property":
            continue
        if len(parts) != 3 or parts[1] not in _PLY_TYPES:
            raise VividZooError(f"{path.name}: unsupported vertex property '{line.strip()}' {where}")
        fields.append((parts[2], _PLY_TYPES[parts[1]]))
    try:
        count = int(first[2])
    except (IndexError, ValueError):
        raise VividZooError(f"{path.name}: bad element line '{lines[elements[0]]}' {where}") from None
    return orders[formats[0][1]], count, fields

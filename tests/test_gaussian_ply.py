"""The PLY writer equals LGM's ``save_ply`` byte for byte; the reader reads it and other 3DGS PLYs back.

The fixture (``tests/data/lgm_ply``) is the original's output, recorded by ``tests/reference/record_lgm_ply.py``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from reference.record_lgm_ply import opacity_log_argument, scale_log_argument, well_conditioned

from vividzoo_core.errors import VividZooError
from vividzoo_core.gaussians import (
    PLY_PROPERTIES,
    PRUNE_OPACITY,
    ply_bytes,
    ply_columns,
    read_ply,
    write_ply,
)

FIXTURE = Path(__file__).parent / "data" / "lgm_ply"
EPS32 = float(np.finfo(np.float32).eps)


def fixture() -> tuple[torch.Tensor, bytes]:
    meta = json.loads((FIXTURE / "meta.json").read_text())
    for name, digest in meta["sha256"].items():
        assert hashlib.sha256((FIXTURE / name).read_bytes()).hexdigest() == digest, name
    return torch.from_numpy(np.load(FIXTURE / "gaussians.npy")), (FIXTURE / "reference.ply").read_bytes()


def split(data: bytes) -> tuple[bytes, np.ndarray]:
    end = data.index(b"end_header\n") + len(b"end_header\n")
    return data[:end], np.frombuffer(data[end:], dtype="<f4").reshape(-1, len(PLY_PROPERTIES))


def test_the_file_equals_lgm_save_ply_byte_for_byte() -> None:
    gaussians, reference = fixture()
    ours = ply_bytes(gaussians)
    header, rows = split(ours)
    reference_header, reference_rows = split(reference)
    assert header == reference_header
    assert rows.shape == reference_rows.shape == (228, 14)
    # Where the float32 log of the original's argument is the same for every implementation (nearly all the
    # values, chosen so), the bytes must be equal on any CPU; the few special values (the clamp at opacity 1,
    # scale 0) within one float32 step, and equal too where this machine's log is the recording machine's.
    kept = gaussians[0][gaussians[0, :, 3] >= np.float32(PRUNE_OPACITY)].numpy()
    exact = np.ones_like(rows, dtype=bool)
    exact[:, 6] = well_conditioned(opacity_log_argument(kept[:, 3]))
    exact[:, 7:10] = well_conditioned(scale_log_argument(kept[:, 4:7]))
    assert exact.sum() >= rows.size - 8
    assert np.array_equal(rows[exact].view(np.uint32), reference_rows[exact].view(np.uint32))
    steps = np.abs(rows.view(np.int32).astype(np.int64) - reference_rows.view(np.int32).astype(np.int64))
    assert steps.max() <= 1
    if steps.max() == 0:
        assert ours == reference


def test_pruning_keeps_float32_0_005_and_drops_the_value_below() -> None:
    threshold = np.float32(PRUNE_OPACITY)
    opacities = [threshold, np.nextafter(threshold, np.float32(0)), 0.5, 0.0, 1.0]
    gaussians = torch.zeros(len(opacities), 14)
    gaussians[:, 3] = torch.tensor(np.array(opacities, dtype=np.float32))
    gaussians[:, 4:7], gaussians[:, 7] = 0.01, 1.0
    gaussians[:, 0] = torch.arange(len(opacities), dtype=torch.float32)  # which ones survive
    assert ply_columns(gaussians)[:, 0].tolist() == [0.0, 2.0, 4.0]


def test_inverse_activations_are_lgm_s() -> None:
    gaussians = torch.tensor([[0.25, -0.5, 1.0, 0.75, 0.1, 0.02, 0.0, 0.5, 0.5, 0.5, 0.5, 1.0, 0.5, 0.0],
                              [0.0, 0.0, 0.0, 1.0, 0.1, 0.1, 0.1, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                              [0.0, 0.0, 0.0, 1 - 1e-6, 0.1, 0.1, 0.1, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    rows = ply_columns(gaussians).astype(np.float64)
    c0 = 0.28209479177387814
    expected = [0.25, -0.5, 1.0, 0.5 / c0, 0.0, -0.5 / c0, np.log(3.0), np.log(0.1), np.log(0.02), np.log(1e-8),
                0.5, 0.5, 0.5, 0.5]
    # float32: each value within a few roundings of its magnitude
    np.testing.assert_allclose(rows[0], expected, rtol=4 * EPS32, atol=0)
    # opacity 1 is clamped to 1 - 1e-6 first (kiui's inverse_sigmoid): the same bytes as 1 - 1e-6 itself
    clamped = np.float64(np.float32(1 - 1e-6))  # 1 - clamped is exact in float32 (Sterbenz)
    assert rows[1, 6] == rows[2, 6] == pytest.approx(np.log(clamped / (1 - clamped)), rel=4 * EPS32)


def test_write_and_read_round_trip(tmp_path: Path) -> None:
    n = 500
    gaussians = torch.cat([torch.rand(n, 3) * 2 - 1, torch.rand(n, 1) * 0.99 + 0.01, torch.rand(n, 3) * 0.1 + 1e-4,
                           torch.nn.functional.normalize(torch.randn(n, 4), dim=-1), torch.rand(n, 3)], dim=1)
    back = read_ply(write_ply(gaussians, tmp_path / "g.ply"))
    assert back.shape == (n, 14) and back.dtype == torch.float32
    torch.testing.assert_close(back[:, 0:3], gaussians[:, 0:3], rtol=0, atol=0)
    torch.testing.assert_close(back[:, 7:11], gaussians[:, 7:11], rtol=0, atol=0)
    # opacity: logit |x| <= 7 here, each of ~4 roundings <= eps relative, sigmoid' <= 1/4: well within 16 eps
    torch.testing.assert_close(back[:, 3], gaussians[:, 3], rtol=0, atol=16 * EPS32)
    # scale: exp(log(s + 1e-8)): |log| <= 10, relative error <= (|log| + 2) eps; plus the 1e-8 added
    torch.testing.assert_close(back[:, 4:7], gaussians[:, 4:7], rtol=16 * EPS32, atol=1.1e-8)
    torch.testing.assert_close(back[:, 11:14], gaussians[:, 11:14], rtol=0, atol=4 * EPS32)


def standard_3dgs_ply(path: Path, rows: np.ndarray, big_endian: bool = False) -> None:
    """A file as the 3DGS reference writes it: normals and 45 f_rest before opacity."""
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", *[f"f_rest_{i}" for i in range(45)],
             "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    order = ">" if big_endian else "<"
    data = np.zeros(len(rows), dtype=[(name, order + "f4") for name in names])
    for i, name in enumerate(PLY_PROPERTIES):
        data[name] = rows[:, i]
    data["f_rest_3"] = 7.0
    header = (f"ply\nformat binary_{'big' if big_endian else 'little'}_endian 1.0\ncomment written by a test\n"
              f"element vertex {len(rows)}\n" + "".join(f"property float {n}\n" for n in names) + "end_header\n")
    path.write_bytes(header.encode() + data.tobytes())


@pytest.mark.parametrize("big_endian", [False, True])
def test_reads_the_reference_3dgs_layout(tmp_path: Path, big_endian: bool) -> None:
    gaussians, _ = fixture()
    rows = ply_columns(gaussians)
    standard_3dgs_ply(tmp_path / "scene.ply", rows, big_endian)
    assert torch.equal(read_ply(tmp_path / "scene.ply"), read_ply(write_ply(gaussians, tmp_path / "ours.ply")))


def test_bad_files_and_tensors_are_refused_in_one_line(tmp_path: Path) -> None:
    cases = {
        "text.ply": b"hello\n",
        "ascii.ply": b"ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nend_header\n",
        "faces.ply": b"ply\nformat binary_little_endian 1.0\nelement face 0\nend_header\n",
        "short.ply": ply_bytes(torch.rand(3, 14))[:-4],
        "points.ply": b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nend_header\n"
                      + bytes(4),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(VividZooError, match=name) as error:
            read_ply(tmp_path / name)
        assert "\n" not in str(error.value)
    with pytest.raises(VividZooError, match="missing.ply"):
        read_ply(tmp_path / "missing.ply")
    for bad in (torch.rand(3, 13), torch.rand(2, 3, 14), torch.zeros(3, 14, dtype=torch.long)):
        with pytest.raises(VividZooError, match="Gaussians|floating"):
            ply_bytes(bad)

"""bench/gpu_report.py keeps working: its tiny CPU run writes the whole table, with consistent numbers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from vividzoo_core.memory import describe_estimate, reconstruction_estimate_gb

REPORT = Path(__file__).resolve().parents[1] / "bench" / "gpu_report.py"


def test_tiny_cpu_report_has_every_row(tmp_path):
    out = tmp_path / "report.md"
    # A process of its own, as users run it: its bf16 training sets accelerate's process-wide state.
    result = subprocess.run([sys.executable, str(REPORT), "--tiny", "--device", "cpu", "--out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = out.read_text().splitlines()
    assert lines[0].startswith("Vivid-ZOO GPU report: tiny random weights, CPU")
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[4:]]
    assert all(len(row) == 8 for row in rows)
    assert [(row[0], row[2], row[3]) for row in rows] == [
        ("one sample", "fp32", "standalone"), ("step-time ratio", "fp32", "standalone"),
        ("one sample", "bf16", "standalone"), ("training", "bf16", "trainer"),
        ("one sample (Animate3D)", "fp32", "standalone"), ("one sample (Animate3D)", "bf16", "standalone"),
        *[(f"reconstruction ({model})", precision, "standalone") for precision in ("fp32", "bf16")
          for model in ("LGM", "L4GM's reconstruction model + interpolation (3x frames)")],
    ]
    for row, frames_out, estimate in zip(rows[6:], [2, 4] * 2, [reconstruction_estimate_gb("lgm", 1, 64),
                                                                 reconstruction_estimate_gb("l4gm", 16, 64, True)] * 2):
        assert row[1] == f"4 views x 2 frames x 64 px, {frames_out} frames out"  # L4GM + interpolation: 3 x 2 - 2
        seconds, score = map(float, re.fullmatch(r"([\d.e-]+) s/input frame \(score ([\d.e-]+) s/frame\)",
                                                 row[4]).groups())
        assert seconds > 0 and score > 0
        assert row[6] == "{:.1f} to {:.1f} GB".format(*estimate)
    for row in rows[4:6]:
        assert row[1] == "4 views x 2 frames x 64 px, 1 DDIM steps x 2 FreeInit passes, CFG 7.5"
        assert float(row[4].removesuffix(" s/sample")) > 0 and 0 < int(row[7].removesuffix("%")) < 100
        assert row[6] == describe_estimate(4, 2, 64, 64, model="animate3d") != describe_estimate(4, 2, 64, 64)
    for row in (rows[0], rows[2]):
        assert row[1] == "4 views x 2 frames x 64 px, 1 DDIM steps, CFG 7.5"
        assert float(row[4].removesuffix(" s/sample")) > 0
        assert row[6] == describe_estimate(4, 2, 64, 64)
        assert 0 < int(row[7].removesuffix("%")) < 100
        assert row[5] == "-"  # no peak memory reading on the CPU
    ratio, wide, paper = map(float, re.fullmatch(r"([\d.]+) \(([\d.]+) / ([\d.]+) s/step\)", rows[1][4]).groups())
    assert rows[1][1] == "1 view x 2 frames x 128 px / 4 views x 2 frames x 64 px"
    assert abs(ratio - wide / paper) <= 0.01 + 0.01 * ratio
    samples_per_second, seconds = map(
        float, re.fullmatch(r"([\d.]+) samples/s \(([\d.]+) s/step\)", rows[3][4]).groups()
    )
    assert abs(samples_per_second - 1 / seconds) <= 0.01 + 0.01 * samples_per_second

"""bench/gpu_report.py keeps working: its tiny CPU run writes the whole table, with consistent numbers."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from vividzoo_core.memory import describe_estimate

REPORT = Path(__file__).resolve().parents[1] / "bench" / "gpu_report.py"


def load_report_module():
    spec = importlib.util.spec_from_file_location("gpu_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_report"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_tiny_cpu_report_has_every_row(tmp_path):
    gpu_report = load_report_module()
    out = tmp_path / "report.md"
    gpu_report.main(["--tiny", "--device", "cpu", "--out", str(out)])
    lines = out.read_text().splitlines()
    assert lines[0].startswith("Vivid-ZOO GPU report: tiny random weights, CPU")
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[4:]]
    assert all(len(row) == 8 for row in rows)
    assert [(row[0], row[2], row[3]) for row in rows] == [
        ("one sample", "fp32", "standalone"), ("step-time ratio", "fp32", "standalone"),
        ("one sample", "bf16", "standalone"), ("training", "bf16", "trainer"),
    ]
    for row in (rows[0], rows[2]):
        assert row[1] == "4 views x 2 frames x 64 px, 1 DDIM steps, CFG 7.5"
        assert float(row[4].removesuffix(" s/sample")) > 0
        assert row[6] == describe_estimate(4, 2, 64, 64)
        assert 0 < int(row[7].removesuffix("%")) < 100
        assert row[5] == "-"  # no peak memory reading on the CPU
    ratio, wide, paper = map(float, re.fullmatch(r"([\d.]+) \(([\d.]+) / ([\d.]+) s/step\)", rows[1][4]).groups())
    assert rows[1][1] == "1 view x 2 frames x 128 px / 4 views x 2 frames x 64 px"
    assert abs(ratio - wide / paper) <= 0.01 + 0.01 * ratio
    samples_per_second, seconds = map(float, re.fullmatch(r"([\d.]+) samples/s \(([\d.]+) s/step\)", rows[3][4]).groups())
    assert abs(samples_per_second - 1 / seconds) <= 0.01 + 0.01 * samples_per_second

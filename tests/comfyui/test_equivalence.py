"""The patched ComfyUI MODEL predicts the same noise as the standalone pipeline (fp32, same inputs)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from comfyui_harness import REPO, comfyui_dir, comfyui_python

from vividzoo_core.synthetic_weights import write_test_weights


def test_comfyui_and_standalone_predict_the_same_noise(tmp_path):
    root = comfyui_dir()
    write_test_weights(tmp_path)
    result = subprocess.run(
        [comfyui_python(root), str(Path(__file__).with_name("noise_equivalence.py")), str(root), str(REPO), str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for cfg in (1.0, 7.5):
        entry = report[f"cfg_{cfg}"]
        # fp32 agreement; guidance multiplies the (independent) rounding differences of both branches.
        assert entry["max_abs_diff"] <= 2e-4 * cfg * entry["scale"], entry
        assert entry["rms_rel_diff"] <= 1e-4 * cfg, entry
    assert report["sigmas_max_rel_diff"] < 1e-6  # the paper's linear betas, through ComfyUI's model_sampling
    # ComfyUI runs text encoders in fp16 on the CPU: fp16-level agreement.
    assert report["clip"]["max_abs_diff"] <= 5e-3 * report["clip"]["scale"], report["clip"]

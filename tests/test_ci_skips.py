"""Under ``CI=true`` a skipped test fails the run (tests/conftest.py); elsewhere it stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize(("ci", "expected"), [("true", "1 failed"), ("", "1 skipped")])
def test_a_skip_fails_only_under_ci(tmp_path, ci, expected):
    (tmp_path / "test_skipping.py").write_text("import pytest\n\ndef test_it():\n    pytest.skip('no host')\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-c", os.devnull, "--rootdir", str(tmp_path),
         str(tmp_path / "test_skipping.py")],
        capture_output=True, text=True, env={**os.environ, "CI": ci, "PYTHONPATH": str(TESTS)}, cwd=tmp_path,
    )
    assert expected in result.stdout, result.stdout
    assert (result.returncode == 1) == (ci == "true")

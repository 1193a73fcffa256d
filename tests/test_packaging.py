"""Registry packaging: pyproject fields, requirements, `comfy node validate` and `comfy node pack`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
COMFY_CLI_ENV = {"DO_NOT_TRACK": "1", "COMFY_NO_UPDATE_CHECK": "1", "COMFY_KNOWLEDGE_FILE": os.devnull}
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_pyproject_and_requirements_agree_and_leave_torch_alone():
    project, comfy = PYPROJECT["project"], PYPROJECT["tool"]["comfy"]
    assert project["name"] == "vividzoo" and "comfyui" not in project["name"].lower()
    assert comfy["PublisherId"] and comfy["DisplayName"] and comfy["requires-comfyui"] == ">=0.12.1"
    requirements = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines() if line.strip()]
    assert requirements == project["dependencies"]
    for line in requirements:
        assert not line.lower().startswith(("torch", "torchvision", "torchaudio")), line


def test_no_installs_or_downloads_at_run_time():
    forbidden = ("pip install", "subprocess", "hf_hub_download", "from_pretrained(", "urlopen", "requests.")
    # dataset render runs its own Blender worker as a process and prints how to install bpy when it is missing.
    allowed = {"vividzoo_core/data/render/batch.py": {"subprocess", "pip install"}}
    for path in [*REPO.glob("nodes/*.py"), *REPO.glob("vividzoo_core/**/*.py"), REPO / "__init__.py"]:
        text = path.read_text()
        for word in set(forbidden) - allowed.get(path.relative_to(REPO).as_posix(), set()):
            assert word not in text, f"{path.relative_to(REPO)} uses {word!r}"


@pytest.fixture(scope="module")
def tracked_copy(tmp_path_factory) -> Path:
    """The files git tracks (as a fresh clone has them), outside the repository."""
    target = tmp_path_factory.mktemp("pack")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for name in files:
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target / name)
    return target


def comfy(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    executable = shutil.which("comfy", path=str(Path(sys.executable).parent))
    assert executable, "comfy-cli is not installed; pip install -e '.[test]'"
    return subprocess.run([executable, "--skip-prompt", "--no-json", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **COMFY_CLI_ENV}, timeout=300)


def test_comfy_node_validate_passes_the_registry_checks(tracked_copy):
    result = comfy(["node", "validate"], tracked_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All validation checks passed" in result.stdout, result.stdout


def test_comfy_node_pack_builds_the_archive(tracked_copy):
    result = comfy(["node", "pack"], tracked_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    names = zipfile.ZipFile(tracked_copy / "node.zip").namelist()
    for required in ("__init__.py", "nodes/patching.py", "vividzoo_core/pipeline.py", "pyproject.toml",
                     "vividzoo_core/assets/bpe_simple_vocab_16e6.txt.gz", "workflows/vividzoo_turntable_orbit.json",
                     "workflows/vividzoo_turntable_orbit.jpg", "LICENSE"):
        assert required in names, required
    assert not [n for n in names if n.startswith(("tests/", "bench/", ".ci/"))]

"""Rendering many assets: discovery, shards, worker processes, resumption and the failure log.

``OUT/.render/`` (ignored by the dataset reader) holds the batch's state: ``done/<stem>.json`` for
every asset whose animations all rendered (a rerun skips it), ``logs/<stem>.log`` with Blender's
output of the last attempt, and ``tmp/`` where objects are rendered before they are renamed into
``OUT``. What did not render is listed in ``OUT/failures.jsonl`` (``failures.shard-I-of-N.jsonl`` for a
shard), one line per failed asset or animation with the reason, rewritten by each run: a rerun tries
them again (the objects already in ``OUT`` are kept).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ...errors import VividZooError
from ..shards import Shard
from .settings import RenderSettings

ASSET_SUFFIXES = (".glb", ".gltf", ".fbx", ".blend")
STATE_FOLDER = ".render"
INSTALL_HINT = "pip install 'vividzoo[render]' (Blender as a Python module, bpy 5.0.1, Python 3.11 only)"


@dataclass
class BatchSummary:
    rendered: list[str] = field(default_factory=list)
    """Object folders written by this run."""
    skipped: list[Path] = field(default_factory=list)
    """Assets finished by an earlier run."""
    failed: list[dict[str, str]] = field(default_factory=list)
    """The lines of the failure log: ``file`` and ``reason``, and ``animation`` when only that animation failed."""
    attempted: int = 0
    """Assets this run has tried so far."""
    images: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.images / self.seconds if self.seconds else 0.0
        animations = sum("animation" in failure for failure in self.failed)
        return (f"rendered {len(self.rendered)} objects ({self.images} images, {rate:.2f} images/s), "
                f"skipped {len(self.skipped)} finished assets, failed {len(self.failed) - animations} assets "
                f"and {animations} animations")


def require_bpy(what: str = "dataset render") -> None:
    if importlib.util.find_spec("bpy") is None:
        raise VividZooError(f"{what} needs Blender's Python module (bpy), which is not installed: {INSTALL_HINT}")


def select_assets(shard: Shard, assets: list[Path]) -> list[Path]:
    """This shard's assets, in file-stem order."""
    return shard.select(assets, lambda path: path.stem)


def find_assets(paths: list[Path]) -> list[Path]:
    """The asset files named, and those found (recursively) in the folders named."""
    assets: list[Path] = []
    for path in paths:
        if path.is_dir():
            assets += sorted(p for p in path.rglob("*") if p.suffix.lower() in ASSET_SUFFIXES and p.is_file())
        elif path.suffix.lower() in ASSET_SUFFIXES:
            assets.append(path)
        else:
            raise VividZooError(f"{path}: not an asset file; give {', '.join(ASSET_SUFFIXES)} files or folders of them")
    by_stem: dict[str, Path] = {}
    for asset in assets:
        if asset.stem in by_stem and by_stem[asset.stem].resolve() != asset.resolve():
            raise VividZooError(f"two assets share the name {asset.stem!r} ({by_stem[asset.stem]} and {asset}); "
                                f"object folders and captions are keyed by file name, so rename one")
        by_stem[asset.stem] = asset
    if not by_stem:
        raise VividZooError(f"no {', '.join(ASSET_SUFFIXES)} files in {', '.join(map(str, paths))}")
    return list(by_stem.values())


def load_captions(path: Path) -> dict[str, str]:
    """``{uid: caption}`` from a CSV of ``uid,caption`` rows (Cap3D's layout) or a JSON object."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise VividZooError(f"cannot read the captions file {path}: {error}") from None
    if path.suffix.lower() == ".json":
        try:
            captions = json.loads(text)
        except json.JSONDecodeError as error:
            raise VividZooError(f"{path}: not valid JSON ({error}); expected {{\"uid\": \"caption\", ...}}") from None
        if not isinstance(captions, dict) or not all(isinstance(v, str) for v in captions.values()):
            raise VividZooError(f"{path}: expected one JSON object {{\"uid\": \"caption\", ...}} with text values")
    else:
        captions = {}
        for number, row in enumerate(csv.reader(text.splitlines()), 1):
            if not row:
                continue
            if len(row) < 2:
                raise VividZooError(f"{path} line {number}: expected 'uid,caption', got {','.join(row)!r}")
            captions[row[0].strip()] = ",".join(row[1:])  # an unquoted caption may hold commas
    return {uid: " ".join(caption.split()) for uid, caption in captions.items() if caption.strip()}


def render_assets(assets: list[Path], out: Path, settings: RenderSettings, captions: dict[str, str] | None = None,
                  shard: Shard | None = None, workers: int = 1, timeout: float = 3600.0,
                  on_done: Callable[[BatchSummary], None] = lambda summary: None) -> BatchSummary:
    """Renders this shard's unfinished assets, ``workers`` at a time; ``on_done`` follows the skip check and
    each asset."""
    require_bpy()
    shard = shard or Shard()
    captions = captions or {}
    state = out / STATE_FOLDER
    work = state / "tmp" / f"shard-{shard.index}-of-{shard.count}"
    shutil.rmtree(work, ignore_errors=True)  # a killed run of this shard leaves half objects here
    for folder in (work, state / "done", state / "logs"):
        folder.mkdir(parents=True, exist_ok=True)
    failures = out / ("failures.jsonl" if shard.count == 1 else f"failures.shard-{shard.index}-of-{shard.count}.jsonl")
    failures.unlink(missing_ok=True)
    if workers > 1 and not settings.threads:
        settings = replace(settings, threads=max(1, (os.cpu_count() or 1) // workers))
    summary, started, lock = BatchSummary(), time.monotonic(), threading.Lock()
    todo = []
    for asset in select_assets(shard, assets):
        (summary.skipped if (state / "done" / f"{asset.stem}.json").is_file() else todo).append(asset)
    on_done(summary)

    def run(asset: Path) -> None:
        result = _run_worker(asset, out, work, settings, captions.get(asset.stem), timeout)
        records = [{"file": str(asset), **failure} for failure in result["failures"]]
        if result["status"] != "rendered":
            records.append({"file": str(asset), "reason": result["reason"]})
        with lock:
            summary.attempted += 1
            summary.rendered += result["objects"]  # in OUT even when a later animation failed
            summary.images += result["images"]
            if records:
                summary.failed += records
                with failures.open("a", encoding="utf-8") as log:
                    log.writelines(json.dumps(record) + "\n" for record in records)
            else:
                write_atomically(state / "done" / f"{asset.stem}.json", json.dumps(result))
            summary.seconds = time.monotonic() - started
            on_done(summary)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(run, todo))
    summary.seconds = time.monotonic() - started
    return summary


def _run_worker(asset: Path, out: Path, work: Path, settings: RenderSettings, caption: str | None,
                timeout: float) -> dict:
    job = {"asset": str(asset), "out": str(out), "work": str(work), "caption": caption, "settings": settings.to_json()}
    log_path = out / STATE_FOLDER / "logs" / f"{asset.stem}.log"
    return {"objects": [], "images": 0, "failures": [], **run_worker(job, work, asset.stem, log_path, timeout)}


def run_worker(job: dict[str, Any], work: Path, name: str, log_path: Path, timeout: float) -> dict[str, Any]:
    """Runs ``job`` in its own Blender worker process (``work/<name>.job.json``), Blender's output into ``log_path``.

    Returns the worker's result; after a crash or timeout, what it had reported before (if anything), with
    ``status`` failed and the reason it stopped.
    """
    result_file = work / f"{name}.result.json"
    job_file = work / f"{name}.job.json"
    job_file.write_text(json.dumps({**job, "result": str(result_file)}))
    package_root = str(Path(__file__).resolve().parents[3])
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    with log_path.open("w") as log:
        try:
            process = subprocess.run([sys.executable, "-m", "vividzoo_core.data.render.worker", str(job_file)],
                                     stdout=log, stderr=subprocess.STDOUT, env=environment, timeout=timeout)
            stopped = None
        except subprocess.TimeoutExpired:
            stopped = f"timeout: not finished after {timeout:g} s (log: {log_path})"
    job_file.unlink()
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    result_file.unlink(missing_ok=True)
    if stopped is None and (process.returncode != 0 or result.get("status") not in ("rendered", "failed")):
        stopped = (f"the Blender worker crashed (exit code {process.returncode}; last output: {_last_line(log_path)}; "
                   f"log: {log_path})")
    return {**result, "status": "failed", "reason": stopped} if stopped else result


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "none"


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)

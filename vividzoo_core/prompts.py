"""Prompt files (one prompt per line, ``#`` comments) and the shipped evaluation prompt list."""

from __future__ import annotations

from pathlib import Path

from .errors import VividZooError

EVAL_PROMPTS = Path(__file__).resolve().parent / "assets" / "eval_prompts.txt"
VALIDATION_PROMPT_COUNT = 4
"""Training validates on the first few evaluation prompts: each costs one full generation per validation."""


def read_prompts(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise VividZooError(f"cannot read the prompts file {path}: {error.strerror}") from None
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise VividZooError(f"{path} has no prompts (one per line; lines starting with # are comments)")
    return prompts


def default_validation_prompts() -> list[str]:
    return read_prompts(EVAL_PROMPTS)[:VALIDATION_PROMPT_COUNT]

"""Errors meant for the person running Vivid-ZOO.

Every message names the file or value at fault and says what would fit, so it can be shown as is:
in the CLI (no traceback), and as a node error in ComfyUI (ValueError subclasses are shown there).
"""

from __future__ import annotations

from pathlib import Path


class VividZooError(ValueError):
    """Bad input: a value, a file or a combination of them that Vivid-ZOO cannot use."""


class CheckpointError(VividZooError):
    """A file that is missing, damaged, unsafe, or not the kind of checkpoint that was asked for."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path.name}: {problem} (file: {self.path})")

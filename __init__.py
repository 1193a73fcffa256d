"""Vivid-ZOO for ComfyUI: text to multi-view video (MVDream + AnimateDiff + alignment layers).

ComfyUI loads this file; the nodes live in ``nodes/`` and the engine in ``vividzoo_core/``.
"""

from .nodes import comfy_entrypoint

__all__ = ["comfy_entrypoint"]

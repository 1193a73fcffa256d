"""Vivid-ZOO: text to multi-view video with MVDream + AnimateDiff + trained alignment layers.

Plain PyTorch; never imports ComfyUI. The ComfyUI nodes (``nodes/``) and the standalone pipeline
and CLI share everything here.
"""

__version__ = "0.1.0"

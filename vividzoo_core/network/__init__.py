"""Network pieces in plain PyTorch: motion modules with alignment layers, multi-view attention."""

from .attention import AttentionFunction, multiview_attention, sdpa_attention
from .motion_module import ALIGNMENT_LAYERS, MotionModule, MotionModuleSet

__all__ = [
    "ALIGNMENT_LAYERS", "AttentionFunction", "MotionModule", "MotionModuleSet", "multiview_attention",
    "sdpa_attention",
]

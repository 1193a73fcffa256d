"""The checkpoint files Vivid-ZOO reads and writes: MVDream, AnimateDiff motion modules, alignment."""

from .alignment import AlignmentCheckpoint, alignment_checkpoint, load_alignment, save_alignment
from .files import LoadedFile, read_checkpoint
from .inspect import inspect_checkpoint
from .motion import MotionModuleCheckpoint, load_motion_module
from .mvdream import SD15, SD21, MVDreamCheckpoint, load_mvdream

__all__ = [
    "AlignmentCheckpoint", "LoadedFile", "MVDreamCheckpoint", "MotionModuleCheckpoint", "SD15", "SD21",
    "alignment_checkpoint", "inspect_checkpoint", "load_alignment", "load_motion_module", "load_mvdream",
    "read_checkpoint", "save_alignment",
]

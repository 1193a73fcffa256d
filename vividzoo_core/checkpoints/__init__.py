"""The checkpoint files Vivid-ZOO reads and writes: MVDream, AnimateDiff motion modules, alignment, for
Animate3D its trained model, the IP-Adapter and the CLIP image encoder, and the reconstruction family's LGM and
L4GM files."""

from .alignment import (
    AlignmentCheckpoint,
    alignment_checkpoint,
    load_alignment,
    save_alignment,
)
from .animate3d import Animate3DCheckpoint, load_animate3d
from .clip_vision import ClipVisionCheckpoint, ClipVisionShape, load_clip_vision
from .files import LoadedFile, read_checkpoint
from .inspect import inspect_checkpoint
from .ip_adapter import IPAdapterCheckpoint, load_ip_adapter
from .motion import MotionModuleCheckpoint, load_motion_module
from .mvdream import SD15, SD21, MVDreamCheckpoint, load_mvdream
from .reconstruction import LGMShape, ReconstructionCheckpoint, load_reconstruction

__all__ = [
    "SD15",
    "SD21",
    "AlignmentCheckpoint",
    "Animate3DCheckpoint",
    "ClipVisionCheckpoint",
    "ClipVisionShape",
    "IPAdapterCheckpoint",
    "LGMShape",
    "LoadedFile",
    "MVDreamCheckpoint",
    "MotionModuleCheckpoint",
    "ReconstructionCheckpoint",
    "alignment_checkpoint",
    "inspect_checkpoint",
    "load_alignment",
    "load_animate3d",
    "load_clip_vision",
    "load_ip_adapter",
    "load_motion_module",
    "load_mvdream",
    "load_reconstruction",
    "read_checkpoint",
    "save_alignment",
]

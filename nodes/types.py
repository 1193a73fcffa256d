"""Socket types of the pack and what travels through them."""

from __future__ import annotations

from dataclasses import dataclass

from comfy_api.latest import io

from ..vividzoo_core.checkpoints import AlignmentCheckpoint

Cameras = io.Custom("VIVIDZOO_CAMERAS")
"""A ``vividzoo_core.cameras.CameraRig``: camera-to-world poses of every view (and frame)."""
MotionModule = io.Custom("VIVIDZOO_MOTION_MODULE")
"""A :class:`LoadedMotionModule`."""
Alignment = io.Custom("VIVIDZOO_ALIGNMENT")
"""A :class:`LoadedAlignment`."""
Animate3D = io.Custom("VIVIDZOO_ANIMATE3D")
"""An ``animate3d_model.LoadedAnimate3D``."""
ReconstructionModel = io.Custom("VIVIDZOO_RECONSTRUCTION_MODEL")
"""A ``reconstruction.LoadedReconstruction``."""
Gaussians = io.Custom("VIVIDZOO_GAUSSIANS")
"""A ``reconstruction.GaussianResult``."""


@dataclass(frozen=True)
class LoadedMotionModule:
    name: str
    version: str
    channels: dict[str, int]
    max_frames: int
    patcher: object
    """ComfyUI ModelPatcher around a ``MotionModuleSet``, so ComfyUI moves it with the UNet."""


@dataclass(frozen=True)
class LoadedAlignment:
    """Trained alignment weights, or none: the training-free combination."""

    name: str
    checkpoint: AlignmentCheckpoint | None

    @property
    def training_free(self) -> bool:
        return self.checkpoint is None

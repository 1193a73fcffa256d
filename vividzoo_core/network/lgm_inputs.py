"""What LGM and L4GM are fed: the 9-channel input, L4GM's view rule, the interpolation model's lerp start.

As the originals' ``infer.py`` (LGM), ``infer_3d.py`` / ``infer_4d.py`` (L4GM) prepare it: frames at 256 px (the
originals ``cv2.resize(..., INTER_AREA)`` video frames to 256 px, then ``F.interpolate`` bilinear to
``input_size`` 256, a no-op), ``TF.normalize`` with ImageNet's mean and std, then the Plücker rays of each view
(:func:`vividzoo_core.lgm_cameras.plucker_rays`, channels ``o x d`` then ``d``) concatenated after the 3 colour
channels. Frames of another size: an integer multiple of 256 is reduced with area averaging (what INTER_AREA
computes for integer factors, without its rounding to 8 bits); any other size is refused.

L4GM's view rule (``infer_4d.py``): at every frame view 0 comes from the video and views 1-3 are the 3D views of
frame 0, repeated (``ref_video[:, 1:] = mv_image[None, 1:]``). That is what it was trained for: a monocular video
plus one multi-view image. ``moving=True`` feeds all 4 views of every frame instead, which a multi-view video has;
L4GM never saw that in training (outside its training distribution), so it is an option, not the default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import VividZooError
from ..lgm_cameras import INPUT_SIZE

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATION_FRAMES = 4
"""The interpolation model's window: 2 new frames between each pair (``interpolate_rate`` 3)."""


def resized(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """``[..., 3, H, W]`` at ``size`` x ``size``: as is, or area-reduced by an integer factor; else refused."""
    height, width = images.shape[-2:]
    if (height, width) == (size, size):
        return images
    if height != width or height % size:
        raise VividZooError(f"LGM and L4GM take square frames of {size} px (or a multiple of it), got "
                            f"{width}x{height}")
    flat = images.reshape(-1, *images.shape[-3:])
    return F.interpolate(flat, size=(size, size), mode="area").reshape(*images.shape[:-2], size, size)


def model_input(images: torch.Tensor, rays: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """Images ``[T, 4, 3, H, W]`` in [0, 1] and rays ``[T or 1, 4, 6, size, size]`` -> ``[1, T, 4, 9, size, size]``
    (``size``: the model's 256; smaller only for tests on tiny weights)."""
    if images.ndim != 5 or images.shape[1:3] != (4, 3):
        raise VividZooError(f"expected images [frames, 4 views, 3, H, W], got {tuple(images.shape)}")
    images = resized(images.float(), size)
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype).view(3, 1, 1)
    normalised = (images - mean) / std
    rays = rays.to(normalised).expand(images.shape[0], -1, -1, -1, -1)
    return torch.cat([normalised, rays], dim=2).unsqueeze(0)


def l4gm_views(frames: torch.Tensor, multi_view: torch.Tensor | None = None, moving: bool = False) -> torch.Tensor:
    """L4GM's input views ``[T, 4, ...]`` from a multi-view video ``frames`` of the same shape.

    Default (the original rule): view 0 of each frame, views 1-3 from ``multi_view`` (``[4, ...]``; the video's
    frame 0 when not given; the original's later runs with interpolation pass renders of the previous run's last
    Gaussians there). ``moving``: the video's 4 views of every frame (see the module note). Any trailing shape:
    apply it to the images ``[T, 4, 3, H, W]`` and to the cameras ``[T, 4, 4, 4]`` alike, so that with a moving
    rig each image keeps the rays of the camera that saw it."""
    if moving:
        return frames
    multi_view = frames[0] if multi_view is None else multi_view
    rest = multi_view[None, 1:].expand(frames.shape[0], *multi_view[1:].shape)
    return torch.cat([frames[:, :1], rest], dim=1)


def interpolation_views(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """The interpolation model's input for one pair of frames: ``[4 frames, 4 views, 3, H, W]``.

    ``start`` and ``end`` are ``[4, 3, H, W]``: view 0 from the video, views 1-3 rendered from L4GM's Gaussians of
    those frames (``infer_4d.py``). Frames 1 and 2 start as ``lerp(start, end, i / 3)`` of all 4 views
    (``interpolate_tensors``); the model moves them to the true in-between frames."""
    steps = INTERPOLATION_FRAMES - 1
    middle = [torch.lerp(start, end, i / steps) for i in range(1, steps)]
    return torch.stack([start, *middle, end])

"""LGM's / L4GM's cameras and Plücker rays, and how a video's cameras (``cameras.json``) map onto them.

The models' convention is kiui's ``orbit_camera`` (``opengl=True``): y-up world, OpenGL camera axes,
camera-to-world, position ``r (cos e sin a, -sin e, cos e cos a)``, so kiui's elevation is positive *below* the
equator. Training used radius 1.5, fovy 49.1 degrees, 4 input views at azimuth 0/90/180/270 in that order, and
moved the first camera to ``orbit_camera(0, 0, 1.5)`` (``transform`` in both providers), which is what
``prepare_default_rays`` assumes. Our cameras (:mod:`vividzoo_core.cameras`, MVDream's convention) are the same
look-at orbit in a Blender z-up world at unit distance, with elevation positive above: so
``pose_kiui(e, a) = BLENDER_TO_OPENGL @ ours(-e, a)`` with the position scaled to 1.5 (:func:`model_poses`).

Policy when a video's cameras are not the training cameras (:func:`ray_poses`):

- not 4 views, or views not 90 degrees apart counter-clockwise from view 0 (the model's view order): refused;
  the network's 4 image slots and its learned view order cannot take them.
- another elevation (our videos: 15 degrees; Animate3D's condition views too) or field of view: the rays are
  built from the real cameras, normalised exactly as training normalised its cameras (first camera moved to
  the canonical pose), with a warning. Why: the Plücker rays are the model's only knowledge of where each pixel
  looks; rays of elevation 0 for images seen from 15 degrees place every Gaussian along a wrong ray. LGM trained
  with jittered cameras for views 1-3 (``orbit_camera_jitter``, up to about 18 degrees) and L4GM on rendered
  elevations, so small differences are close to what they saw. At elevation 0 and fovy 49.1 the rays equal
  ``prepare_default_rays`` exactly (the normalisation is then the identity).

A moving rig gives rays per frame, all normalised by frame 0's first camera (as the providers normalise by the
first pose of the clip); with L4GM's view rule, views 1-3 take frame 0's cameras like their images
(:func:`vividzoo_core.network.lgm_inputs.l4gm_views` applies to both). The Gaussians come out in the frame of the
normalised cameras; :func:`world_from_model` maps them back to the
video's world (our convention), for renders at the input cameras.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .cameras import OPENGL_TO_BLENDER, CameraRig, camera_to_world
from .errors import VividZooError

FOVY = 49.1
RADIUS = 1.5
ZNEAR = 0.5
ZFAR = 2.5
"""LGM's training cameras (``core/options.py``): field of view (degrees), distance from the origin, near/far planes."""
ELEVATION = 0.0
AZIMUTHS = (0.0, 90.0, 180.0, 270.0)
INPUT_SIZE = 256
ANGLE_TOLERANCE = 0.5
"""Degrees: closer than this to the training cameras counts as the same (the matrices in cameras.json are rounded)."""
BLENDER_TO_OPENGL = OPENGL_TO_BLENDER.T


def model_poses(matrices: np.ndarray, radius: float = RADIUS) -> np.ndarray:
    """Our camera-to-world matrices ``(..., 4, 4)`` (Blender world, any distance) in kiui's convention at ``radius``."""
    poses = BLENDER_TO_OPENGL @ np.asarray(matrices, dtype=np.float64)
    poses[..., :3, 3] *= radius / np.linalg.norm(poses[..., :3, 3], axis=-1, keepdims=True)
    return poses


def world_from_model(matrices: np.ndarray, radius: float = RADIUS) -> np.ndarray:
    """The 4x4 point map (rotation, translation, scale ``1 / radius``) from the model's normalised frame (see
    :func:`normalised`) to our world (Blender, unit distance): Gaussian positions ``p -> M @ (p, 1)``.

    ``matrices``: the video's cameras ``(views, 4, 4)`` of the frame the normalisation used."""
    first = model_poses(matrices[0], radius)
    transform = _canonical(radius) @ np.linalg.inv(first)
    scale = np.diag([1 / radius] * 3 + [1.0])
    return OPENGL_TO_BLENDER @ scale @ np.linalg.inv(transform)


def trained_poses() -> np.ndarray:
    """The 4 cameras of ``prepare_default_rays`` (elevation 0, radius 1.5), ``(4, 4, 4)``."""
    return model_poses(camera_to_world(ELEVATION, np.array(AZIMUTHS)))


def _canonical(radius: float) -> np.ndarray:
    canonical = np.eye(4)
    canonical[2, 3] = radius
    return canonical


def normalised(poses: np.ndarray, radius: float = RADIUS) -> np.ndarray:
    """The providers' normalisation: every pose times ``canonical @ inverse(poses[first])``."""
    flat = poses.reshape(-1, 4, 4)
    transform = _canonical(radius) @ np.linalg.inv(flat[0])
    return (transform @ flat).reshape(poses.shape)


def angles(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elevation (our sign: positive above) and azimuth in degrees of model poses' positions."""
    position = poses[..., :3, 3]
    radius = np.linalg.norm(position, axis=-1)
    elevation = np.degrees(np.arcsin(np.clip(position[..., 1] / radius, -1, 1)))
    return elevation, np.degrees(np.arctan2(position[..., 0], position[..., 2]))


def ray_poses(rig: CameraRig, fovy: float = FOVY) -> tuple[np.ndarray, list[str]]:
    """The policy above: model poses ``(frames, 4, 4, 4)`` for the rays, and warnings; refuses unusable rigs."""
    if rig.views != len(AZIMUTHS):
        raise VividZooError(f"LGM and L4GM take {len(AZIMUTHS)} views at azimuth 0/90/180/270 degrees, "
                            f"but the cameras have {rig.views} views")
    poses = model_poses(rig.matrices)
    elevation, azimuth = angles(poses)
    steps = (azimuth - azimuth[:, :1]) % 360
    off = np.abs((steps - np.array(AZIMUTHS) + 180) % 360 - 180)
    if off.max() > ANGLE_TOLERANCE:
        raise VividZooError(
            "LGM and L4GM take views 90 degrees apart counter-clockwise from the first (azimuth offsets "
            f"0/90/180/270), but the cameras' offsets are {np.round(steps[int(off.max(1).argmax())], 1).tolist()}")
    warnings = []
    if np.abs(elevation - ELEVATION).max() > ANGLE_TOLERANCE:
        warnings.append(
            f"the cameras' elevation is {np.round(elevation.max(), 1)} degrees but the model was trained at "
            f"{ELEVATION:g}: the rays use the real cameras (normalised as in training), so the reconstruction sits "
            f"in the first camera's frame; expect some loss of quality")
    if abs(fovy - FOVY) > 1e-6:
        warnings.append(f"field of view {fovy:g} degrees instead of the {FOVY:g} the model was trained with: "
                        f"the rays use {fovy:g}")
    return normalised(poses), warnings


def plucker_rays(poses: torch.Tensor | np.ndarray, size: int = INPUT_SIZE, fovy: float = FOVY) -> torch.Tensor:
    """``core/utils.py`` ``get_rays`` (OpenGL), then ``cat(cross(o, d), d)``: ``(..., 4, 4)`` -> ``(..., 6, H, W)``.

    Pixel centres at ``(x + 0.5, y + 0.5)``, y down the image, the camera looking down its -z; ``d`` unit length."""
    poses = torch.as_tensor(poses, dtype=torch.float32)
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    focal = size * 0.5 / math.tan(0.5 * math.radians(fovy))
    directions = torch.stack([(x - size * 0.5 + 0.5) / focal, -(y - size * 0.5 + 0.5) / focal,
                              -torch.ones(size, size)], dim=-1)  # [H, W, 3]
    rotation, origin = poses[..., :3, :3], poses[..., :3, 3]
    rays_d = torch.einsum("hwj,...ij->...hwi", directions, rotation)
    rays_d = rays_d / torch.sqrt(torch.clamp((rays_d * rays_d).sum(-1, keepdim=True), min=1e-20))
    rays_o = origin[..., None, None, :].expand_as(rays_d)
    return torch.cat([torch.cross(rays_o, rays_d, dim=-1), rays_d], dim=-1).movedim(-1, -3).contiguous()

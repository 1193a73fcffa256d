"""Rendering 3D Gaussians (:mod:`vividzoo_core.gaussians`' ``(N, 14)`` tensors): an exact PyTorch renderer for the
CPU, and gsplat's CUDA rasteriser where it is installed.

**Cameras** (:class:`SplatCamera`) are LGM's: a camera-to-world matrix with OpenGL camera axes (x right, y up,
z back, as kiui's ``orbit_camera(..., opengl=True)`` returns) in the Gaussians' world (y up), a vertical field
of view (LGM's 49.1 degrees), near and far planes (0.5 and 2.5), and a square or rectangular image with
the principal point at its centre. As in LGM's renderer the matrix is turned into OpenCV axes (y and z
negated) and inverted to the view matrix; the focal length is ``height / (2 tan(fovy / 2))`` for both axes.

**The CPU renderer** (:func:`render` with ``backend="torch"``) follows the 3DGS equations as gsplat implements
them, in float32 unless given float64:

- 3D covariance ``R S S^T R^T`` from the scales and the normalised quaternion ``(w, x, y, z)``;
- centres outside ``near < z < far`` (view space) are dropped (gsplat's near/far culling, as L4GM renders);
- EWA projection: ``J W Sigma W^T J^T`` with the perspective Jacobian at the centre (its ``x/z`` and ``y/z``
  clamped to 1.3 times the half field of view, as 3DGS and gsplat do) plus 0.3 px^2 on the diagonal;
- the pixel ``(row i, column j)`` has its centre at ``(j + 0.5, i + 0.5)``; the centre of the image is
  ``(W / 2, H / 2)``;
- ``alpha = min(0.99, opacity * exp(-0.5 d^T conic d))``; a Gaussian with ``alpha < 1/255`` at a pixel is skipped
  there (everywhere that test passes counts: no 3-sigma cut-off);
- front to back by view-space depth of the centres (ties keep the input order): ``C += colour * alpha * T``,
  ``T *= 1 - alpha``, stopping before the Gaussian that would bring ``T`` below 1e-4; then ``C += T * background``.

It works on tiles of :data:`TILE` px, one row of tiles at a time (each Gaussian listed in the tiles its
box meets, in depth order), evaluating at most :data:`CHUNK_ELEMENTS` pixel-Gaussian pairs at once, so memory stays
bounded: tens of MB for a 256 px image of 65k Gaussians (``bench/splat_render.py``).

**gsplat** (``backend="gsplat"``, or ``"auto"`` with the Gaussians on a CUDA device and gsplat installed) calls
``gsplat.rendering.rasterization`` with the same camera, near/far planes and background, as L4GM does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .cameras import camera_to_world
from .errors import VividZooError
from .gaussians import OPACITY, RGB, ROTATION, SCALE, XYZ, check_gaussians
from .lgm_cameras import FOVY, RADIUS, ZFAR, ZNEAR, model_poses

MIN_ALPHA = 1.0 / 255.0
MAX_ALPHA = 0.99
MIN_TRANSMITTANCE = 1e-4
LOW_PASS = 0.3
"""Added to the 2D covariance's diagonal (px^2): the screen-space filter of 3DGS and gsplat."""
JACOBIAN_CLAMP = 1.3
TILE = 8
CHUNK_ELEMENTS = 1 << 21
"""At most this many pixel-Gaussian pairs are evaluated at once (a few float tensors of this size in memory)."""
FIRST_CHUNK = 32
"""Gaussians in a tile's first chunk; each next chunk doubles, up to the limit above."""
BACKENDS = ("auto", "torch", "gsplat")


@dataclass(frozen=True)
class SplatCamera:
    """A pinhole camera looking at Gaussians; see the module's docstring for the convention."""

    camera_to_world: np.ndarray
    """``(4, 4)``: OpenGL camera axes in the Gaussians' y-up world."""
    fovy_degrees: float = FOVY
    znear: float = ZNEAR
    zfar: float = ZFAR

    def view_matrix(self) -> np.ndarray:
        """World to camera with OpenCV axes (x right, y down, z forward): what 3DGS and gsplat take."""
        opencv = np.array(self.camera_to_world, dtype=np.float64)
        opencv[:3, 1:3] *= -1
        return np.linalg.inv(opencv)

    def focal(self, height: int) -> float:
        return height / (2 * math.tan(math.radians(self.fovy_degrees) / 2))

    def intrinsics(self, height: int, width: int) -> np.ndarray:
        """``(3, 3)`` K: equal focal lengths from the vertical field of view, principal point at the centre."""
        f = self.focal(height)
        return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=np.float64)


def camera_from_rig(matrix: np.ndarray, radius: float = RADIUS, **options: float) -> SplatCamera:
    """The camera of one view of a :class:`~vividzoo_core.cameras.CameraRig` (MVDream's convention: Blender z-up
    world, unit distance) in the Gaussians' y-up world (kiui's, :func:`~vividzoo_core.lgm_cameras.model_poses`), moved
    out to ``radius``. ``options``: fovy_degrees, znear, zfar. At elevation 0 this is LGM's
    ``orbit_camera(0, azimuth, radius)`` for the same azimuth."""
    return SplatCamera(model_poses(matrix, radius), **options)


def turntable(count: int, elevation: float = 0.0, radius: float = RADIUS,
              **options: float) -> list[SplatCamera]:
    """``count`` cameras around the object at azimuth ``360 * i / count`` (from the front, the first view's side),
    ``elevation`` degrees above it (our convention: positive looks down), for turntable previews."""
    azimuths = 360.0 * np.arange(count) / count
    return [camera_from_rig(m, radius, **options) for m in camera_to_world(np.full(count, elevation), azimuths)]


@dataclass
class Rendering:
    image: torch.Tensor
    """``(H, W, 3)`` colour composited over the background."""
    alpha: torch.Tensor
    """``(H, W)`` accumulated opacity ``1 - T``."""


def render(gaussians: torch.Tensor, camera: SplatCamera, height: int, width: int | None = None,
           background: Sequence[float] | torch.Tensor = (1.0, 1.0, 1.0), backend: str = "auto") -> Rendering:
    """Renders ``(N, 14)`` activated Gaussians seen by ``camera`` at ``height x width`` (default square).

    ``background``: RGB in [0, 1] (LGM renders on white). ``backend``: ``"torch"`` (the exact CPU renderer, any
    device), ``"gsplat"`` (CUDA), ``"auto"`` (gsplat for CUDA tensors when it is installed, else torch). The
    colour is not clamped (LGM clamps to [0, 1] after rendering; colours in [0, 1] stay there).
    """
    gaussians = check_gaussians(gaussians)
    width = height if width is None else width
    if height < 1 or width < 1:
        raise VividZooError(f"render size must be at least 1x1 pixels, got {height}x{width}")
    if backend not in BACKENDS:
        raise VividZooError(f"unknown renderer backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    dtype = torch.float64 if gaussians.dtype == torch.float64 else torch.float32
    gaussians = gaussians.to(dtype)
    background = torch.as_tensor(background, dtype=dtype, device=gaussians.device).reshape(3)
    if backend == "gsplat" or (backend == "auto" and gaussians.is_cuda and gsplat_available()):
        return _render_gsplat(gaussians, camera, height, width, background)
    return _render_torch(gaussians, camera, height, width, background)


def gsplat_available() -> bool:
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


@dataclass
class Projected:
    """The screen-space Gaussians of :func:`project`, sorted front to back, culled ones removed."""

    means: torch.Tensor  # (M, 2) pixels
    conics: torch.Tensor  # (M, 3) a, b, c of [[a, b], [b, c]] = inverse 2D covariance
    opacities: torch.Tensor  # (M,)
    colors: torch.Tensor  # (M, 3)
    depths: torch.Tensor  # (M,)
    boxes: torch.Tensor  # (M, 4) first and last pixel column and row that can reach alpha >= 1/255
    index: torch.Tensor  # (M,) position in the input


def project(gaussians: torch.Tensor, camera: SplatCamera, height: int, width: int) -> Projected:
    """Projects the Gaussians to the screen (EWA), culls them, and sorts them by depth (the renderer's first half)."""
    dtype, device = gaussians.dtype, gaussians.device
    view = torch.as_tensor(camera.view_matrix(), dtype=dtype, device=device)
    K = camera.intrinsics(height, width)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    points = gaussians[:, XYZ] @ view[:3, :3].T + view[:3, 3]
    x, y, z = points.unbind(-1)
    cov_camera = view[:3, :3] @ covariance_3d(gaussians[:, SCALE], gaussians[:, ROTATION]) @ view[:3, :3].T
    lim_x, lim_y = JACOBIAN_CLAMP * 0.5 * width / fx, JACOBIAN_CLAMP * 0.5 * height / fy
    safe_z = torch.where(z > 0, z, torch.ones_like(z))
    tx, ty = (x / safe_z).clamp(-lim_x, lim_x) * safe_z, (y / safe_z).clamp(-lim_y, lim_y) * safe_z
    jacobian = torch.zeros(len(z), 2, 3, dtype=dtype, device=device)
    jacobian[:, 0, 0], jacobian[:, 0, 2] = fx / safe_z, -fx * tx / safe_z**2
    jacobian[:, 1, 1], jacobian[:, 1, 2] = fy / safe_z, -fy * ty / safe_z**2
    cov = jacobian @ cov_camera @ jacobian.transpose(1, 2)
    a, b, c = cov[:, 0, 0] + LOW_PASS, cov[:, 0, 1], cov[:, 1, 1] + LOW_PASS
    det = a * c - b * b
    means = torch.stack([fx * x / safe_z + cx, fy * y / safe_z + cy], dim=-1)
    opacity = gaussians[:, OPACITY].squeeze(-1)
    # Mahalanobis radius where opacity * exp(-r^2 / 2) = 1/255: beyond it no pixel passes the alpha test.
    reach = torch.sqrt(2 * torch.log((opacity / MIN_ALPHA).clamp(min=1)))
    half = torch.stack([reach * torch.sqrt(a.clamp(min=0)), reach * torch.sqrt(c.clamp(min=0))], dim=-1)
    # Pixel centres at index + 0.5; one pixel of slack (the alpha test makes the exact cut).
    first = torch.floor(means - half - 0.5)
    last = torch.ceil(means + half - 0.5)
    keep = (z > camera.znear) & (z < camera.zfar) & (det > 0) & (opacity >= MIN_ALPHA)
    keep &= (last[:, 0] >= 0) & (first[:, 0] <= width - 1) & (last[:, 1] >= 0) & (first[:, 1] <= height - 1)
    index = torch.nonzero(keep).squeeze(-1)
    index = index[torch.sort(z[index], stable=True).indices]
    inverse = torch.stack([c, -b, a], dim=-1)[index] / det[index, None]
    boxes = torch.cat([first, last], dim=-1)[index].long()
    return Projected(means[index], inverse, opacity[index], gaussians[index][:, RGB], z[index], boxes, index)


def covariance_3d(scales: torch.Tensor, quaternions: torch.Tensor) -> torch.Tensor:
    """``(N, 3, 3)``: ``R S S^T R^T`` from scales ``(N, 3)`` and quaternions ``(N, 4)`` ``(w, x, y, z)``."""
    w, x, y, z = torch.nn.functional.normalize(quaternions, dim=-1).unbind(-1)
    rotation = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(-1, 3, 3)
    m = rotation * scales[:, None, :]
    return m @ m.transpose(1, 2)


def _render_torch(gaussians: torch.Tensor, camera: SplatCamera, height: int, width: int,
                  background: torch.Tensor) -> Rendering:
    projected = project(gaussians, camera, height, width)
    dtype, device = gaussians.dtype, gaussians.device
    image = torch.empty(height, width, 3, dtype=dtype, device=device)
    alpha = torch.empty(height, width, dtype=dtype, device=device)
    for top in range(0, height, TILE):
        bottom = min(top + TILE, height)
        starts, hits = _tile_bins(projected.boxes, top, bottom, width)
        for column in range(len(starts) - 1):
            left, right = column * TILE, min(column * TILE + TILE, width)
            ys, xs = torch.meshgrid(torch.arange(top, bottom, dtype=dtype, device=device) + 0.5,
                                    torch.arange(left, right, dtype=dtype, device=device) + 0.5, indexing="ij")
            color, transmittance = _composite(projected, hits[starts[column] : starts[column + 1]],
                                              xs.reshape(-1), ys.reshape(-1))
            color = color + transmittance[:, None] * background
            image[top:bottom, left:right] = color.reshape(bottom - top, right - left, 3)
            alpha[top:bottom, left:right] = (1 - transmittance).reshape(bottom - top, right - left)
    return Rendering(image, alpha)


def _tile_bins(boxes: torch.Tensor, top: int, bottom: int, width: int) -> tuple[list[int], torch.Tensor]:
    """The Gaussians (indices, front to back) whose box meets each tile of the row of tiles from pixel row ``top``
    to ``bottom``: tile ``t`` (from the left) has ``hits[starts[t] : starts[t + 1]]``. One row of tiles at a time
    keeps the pairs at most Gaussians x tiles per row."""
    columns = (width + TILE - 1) // TILE
    inside = torch.nonzero((boxes[:, 3] >= top) & (boxes[:, 1] <= bottom - 1)).squeeze(-1)
    first = boxes[inside, 0].clamp(min=0) // TILE
    counts = boxes[inside, 2].clamp(max=width - 1) // TILE - first + 1
    owner = torch.repeat_interleave(torch.arange(len(inside), device=boxes.device), counts)
    offset = torch.arange(len(owner), device=boxes.device) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts,
                                                                                      counts)
    tile = first[owner] + offset
    order = torch.sort(tile, stable=True).indices  # stable: each tile keeps the depth order
    starts = [0, *torch.cumsum(torch.bincount(tile, minlength=columns), 0).tolist()]
    return starts, inside[owner[order]]


def _composite(projected: Projected, hits: torch.Tensor, xs: torch.Tensor,
               ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Front-to-back compositing of the Gaussians ``hits`` (sorted) at pixel centres ``(xs, ys)``."""
    pixels = xs.numel()
    color = xs.new_zeros(pixels, 3)
    transmittance = xs.new_ones(pixels)
    done = torch.zeros(pixels, dtype=torch.bool, device=xs.device)
    largest = max(1, CHUNK_ELEMENTS // max(pixels, 1))
    start, step = 0, min(FIRST_CHUNK, largest)
    while start < hits.numel():
        # Chunks grow from a few Gaussians: in opaque regions every pixel is done after the first ones.
        chosen = hits[start : start + step]
        start, step = start + step, min(2 * step, largest)
        dx = xs[None, :] - projected.means[chosen, 0:1]
        dy = ys[None, :] - projected.means[chosen, 1:2]
        a, b, c = projected.conics[chosen].T[..., None]
        power = -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy
        alpha = (projected.opacities[chosen, None] * torch.exp(power)).clamp(max=MAX_ALPHA)
        alpha = torch.where((power > 0) | (alpha < MIN_ALPHA), torch.zeros_like(alpha), alpha)
        # T after each Gaussian (inclusive); a pixel stops before the Gaussian that brings it below 1e-4.
        after = transmittance[None, :] * torch.cumprod(1 - alpha, dim=0)
        used = (after >= MIN_TRANSMITTANCE) & ~done[None, :]
        before = torch.cat([transmittance[None, :], after[:-1]], dim=0)
        weight = torch.where(used, alpha * before, torch.zeros_like(alpha))
        color = color + weight.T @ projected.colors[chosen]
        count = used.sum(dim=0)
        last = torch.where(count > 0, after.gather(0, (count - 1).clamp(min=0)[None, :])[0], transmittance)
        done = done | (count < len(chosen))
        transmittance = last
        if bool(done.all()):
            break
    return color, transmittance


def _render_gsplat(gaussians: torch.Tensor, camera: SplatCamera, height: int, width: int,
                   background: torch.Tensor) -> Rendering:
    try:
        from gsplat.rendering import rasterization
    except ImportError:
        raise VividZooError("the gsplat renderer needs the gsplat package and CUDA; "
                            "use the torch renderer instead") from None
    if not gaussians.is_cuda:
        raise VividZooError("the gsplat renderer needs the Gaussians on a CUDA device; use the torch renderer")
    gaussians = gaussians.float()
    device = gaussians.device
    view = torch.as_tensor(camera.view_matrix(), dtype=torch.float32, device=device)
    K = torch.as_tensor(camera.intrinsics(height, width), dtype=torch.float32, device=device)
    colors, alphas, _ = rasterization(
        means=gaussians[:, XYZ].contiguous(), quats=gaussians[:, ROTATION].contiguous(),
        scales=gaussians[:, SCALE].contiguous(), opacities=gaussians[:, OPACITY].squeeze(-1).contiguous(),
        colors=gaussians[:, RGB].contiguous(), viewmats=view[None], Ks=K[None], width=width, height=height,
        near_plane=camera.znear, far_plane=camera.zfar, packed=False, backgrounds=background.float()[None],
        render_mode="RGB",
    )
    return Rendering(colors[0], alphas[0, ..., 0])

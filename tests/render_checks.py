"""Pixel checks shared by the Blender render tests, and their bpy gate.

Pixel ``j`` spans ``[j, j + 1)``: a point projected to ``x = 10.5`` is the centre of pixel column 10.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

HAVE_BPY = importlib.util.find_spec("bpy") is not None
if not HAVE_BPY and os.environ.get("CI"):
    raise RuntimeError("CI must run the render tests: install bpy (pip install -e '.[test]' on Python 3.11)")
needs_bpy = pytest.mark.skipif(
    not HAVE_BPY, reason="RENDER TESTS SKIPPED: bpy missing; pip install -e '.[test]' on Python 3.11"
)


def blob_centre(image: np.ndarray, channel: int) -> tuple[float, float] | None:
    """Alpha- and colour-weighted centre (x, y) of the pixels where red (0) or blue (2) dominates, in an RGBA
    image scaled to [0, 1]; None when no such pixel shows."""
    weight = image[..., 3] * np.clip(image[..., channel] - image[..., 2 - channel], 0.0, None)
    if weight.sum() <= 0.5:
        return None
    rows, columns = np.mgrid[0:image.shape[0], 0:image.shape[1]] + 0.5
    return float((weight * columns).sum() / weight.sum()), float((weight * rows).sum() / weight.sum())


def silhouette_errors(alpha: np.ndarray, projected: np.ndarray) -> tuple[float, float, float]:
    """For one image's alpha in [0, 1] and the ``(n, 2)`` pixel positions of the object's vertices: the largest
    distance (px) from a projected vertex to a covered pixel, the largest from a covered pixel's centre
    (alpha > 1/2) to the projected vertices' bounding box, and the most alpha on the image border."""
    covered = np.argwhere(alpha > 0)[:, ::-1]  # (x, y) of pixel [x, x+1) x [y, y+1)
    gap = np.maximum(np.maximum(covered[None] - projected[:, None], projected[:, None] - covered[None] - 1), 0)
    to_vertex = float(np.linalg.norm(gap, axis=2).min(1).max())
    centres = np.argwhere(alpha > 0.5)[:, ::-1] + 0.5
    gap = np.maximum(np.maximum(projected.min(0) - centres, centres - projected.max(0)), 0)
    to_box = float(np.linalg.norm(gap, axis=1).max(initial=0.0))
    border = float(np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]]).max())
    return to_vertex, to_box, border

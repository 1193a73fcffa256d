"""The folder layout of a captioned multi-view video dataset.

    DATASET/
      <object id>/                 one animated object (any folder name)
        caption.txt                its caption, one non-empty line (", 3d asset" is appended if missing)
        cameras.json               camera-to-world poses of every view and frame, in Vivid-ZOO's camera
                                   format (vividzoo_core.cameras; MVDream convention, unit distance),
                                   with "azimuth"/"elevation" per camera when known
        views/
          000/                     view 0 (one camera azimuth), frames in time order
            0000.png 0001.png ...
          001/ ...
          002.mp4                  or a video file per view (any mix): decoded on demand, never copied
      vividzoo-manifest.json       written by ``vividzoo dataset check``: what it found, which training
                                   reuses for unchanged objects (vividzoo_core/data/manifest.py)

Every view has the same number of frames (a video's frames are its decoded frames in time order);
``cameras.json`` has one row per frame (or a single row: cameras that stay put) and one entry per view folder.
Images are RGB (or RGBA, composited on white), any size; the reader resizes and centre-crops them. The paper
renders 24 azimuths at 512 px and trains on 4 mutually orthogonal views x 16 frames (stride 3) at 256 px.
"""

from __future__ import annotations

from pathlib import Path

CAPTION_FILE = "caption.txt"
VIEWS_FOLDER = "views"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
VIDEO_SUFFIX = ".mp4"


def view_folder(object_dir: Path, view: int) -> Path:
    return object_dir / VIEWS_FOLDER / f"{view:03d}"


def frame_path(object_dir: Path, view: int, frame: int, suffix: str = ".png") -> Path:
    return view_folder(object_dir, view) / f"{frame:04d}{suffix}"


def view_video(object_dir: Path, view: int) -> Path:
    return object_dir / VIEWS_FOLDER / f"{view:03d}{VIDEO_SUFFIX}"

"""Writing multi-view videos: grids, MP4 (PyAV), animated WebP (Pillow), PNG frames, cameras.

Frames are ``(frames, views, height, width, 3)`` float tensors in [0, 1] (layout order). Writers take
one frame at a time, so no extra copy of the whole video is made. A finished generation is never
lost to a failing writer or output folder: :func:`save_video_or_rescue` keeps it in the temp folder.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .cameras import CAMERAS_FILE, CameraRig, transforms_json
from .errors import VividZooError
from .layout import VideoLayout
from .settings import FPS

DEFAULT_FPS = FPS.default
# The files of one saved video, the same from the command line and from ComfyUI's Combine node.
GRID_MP4 = "grid.mp4"
GRID_WEBP = "grid.webp"
TRANSFORMS_FILE = "transforms.json"
INFO_FILE = "info.json"
FRAMES_FOLDER = "frames"
CONDITION_FOLDER = "condition_views"
"""The images a video was conditioned on (Animate3D's 4 views), as ``0.png`` ...: the names Animate3D reads."""


def view_video_name(view: int) -> str:
    return f"view_{view:02d}.mp4"


def frame_name(frame: int, view: int) -> str:
    return f"{FRAMES_FOLDER}/f{frame:03d}_v{view:02d}.png"


def read_info(folder: Path) -> dict:
    """A result folder's ``info.json`` (prompt, settings); empty when there is none or it holds no object."""
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise VividZooError(f"{path} is not valid JSON ({error})") from None
    return info if isinstance(info, dict) else {}


FRAME_PATTERN = re.compile(r"f(\d{3})_v(\d{2})\.png")
"""The file name :func:`frame_name` gives a frame in ``FRAMES_FOLDER``, with its frame and view numbers."""


def saved_frame_grid(folder: Path) -> tuple[int, int]:
    """``(frames, views)`` of the PNG frames a result ``folder`` holds in ``frames/``; refuses none, or a grid with
    holes."""
    found = {tuple(map(int, m.groups())) for p in (folder / FRAMES_FOLDER).glob("*.png")
             if (m := FRAME_PATTERN.fullmatch(p.name))}
    if not found:
        raise VividZooError(f"{folder / FRAMES_FOLDER} holds no fFFF_vVV.png frames (is this a `vividzoo generate` "
                            "result?)")
    frames, views = max(f for f, _ in found) + 1, max(v for _, v in found) + 1
    missing = sorted({(f, v) for f in range(frames) for v in range(views)} - found)
    if missing:
        names = ", ".join(Path(frame_name(f, v)).name for f, v in missing[:3])
        raise VividZooError(f"{folder / FRAMES_FOLDER} is incomplete: {len(missing)} of {frames} frames x {views} "
                            f"views missing ({names}...)")
    return frames, views


def read_saved_frames(folder: Path, frames: int, views: int) -> torch.Tensor:
    """The PNG frames of a result ``folder`` (see :func:`saved_frame_grid`) as ``(frames, views, H, W, 3)`` float in
    [0, 1], like ``MultiViewVideo.frames``."""
    images = []
    for f in range(frames):
        row = []
        for v in range(views):
            path = folder / frame_name(f, v)
            try:
                with Image.open(path) as image:
                    row.append(np.asarray(image.convert("RGB")))
            except (OSError, ValueError) as error:
                raise VividZooError(f"{path}: not an image this machine can read ({error})") from None
        images.append(row)
    sizes = {image.shape for row in images for image in row}
    if len(sizes) != 1:
        raise VividZooError(f"{folder / FRAMES_FOLDER}: images of different sizes {sorted(s[:2] for s in sizes)}")
    return torch.from_numpy(np.stack([np.stack(row) for row in images])).float() / 255.0


@dataclass
class MultiViewVideo:
    frames: torch.Tensor
    """``(frames, views, H, W, 3)`` float in [0, 1]."""
    cameras: CameraRig | None
    """The cameras of every view and frame; None when unknown (nothing camera-related is written then)."""
    fps: float = DEFAULT_FPS
    info: dict = field(default_factory=dict)
    """The settings that made it: written as ``info.json`` and as the MP4s' ``comment``."""
    condition_views: torch.Tensor | None = None
    """``(views, H, W, 3)`` in [0, 1]: the images it was conditioned on (Animate3D), if any."""

    @property
    def frame_count(self) -> int:
        return self.frames.shape[0]

    @property
    def views(self) -> int:
        return self.frames.shape[1]


def grid_columns(views: int) -> int:
    """Views side by side in one row up to 4; a near-square grid beyond."""
    return views if views <= 4 else math.ceil(math.sqrt(views))


def views_to_grid(frames: torch.Tensor, columns: int | None = None) -> torch.Tensor:
    """``(F, V, H, W, C) -> (F, rows*H, columns*W, C)``; empty cells are black."""
    count, views, height, width, channels = frames.shape
    columns = columns or grid_columns(views)
    rows = math.ceil(views / columns)
    grid = frames.new_zeros(count, rows * height, columns * width, channels)
    for v in range(views):
        r, c = divmod(v, columns)
        grid[:, r * height : (r + 1) * height, c * width : (c + 1) * width] = frames[:, v]
    return grid


def frame_grid(batch: torch.Tensor, layout: VideoLayout, frame: int) -> torch.Tensor:
    """``(B, C, H, W)`` in layout order -> ``(1, C, rows*H, columns*W)``: the views of ``frame`` (first copy) placed
    as ``grid.mp4`` places them. For sampling previews, which show one image of the batch."""
    start = layout.index(frame, 0)
    views = batch[start:start + layout.views]
    return views_to_grid(views.movedim(1, -1)[None]).movedim(-1, 1)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    return (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def write_mp4(path: str | Path, frames: Iterable[torch.Tensor], fps: float = DEFAULT_FPS,
              quality: int = 18, metadata: dict[str, str] | None = None) -> Path:
    """H.264 MP4 (yuv420p, plays everywhere) through PyAV; odd sizes are padded by one pixel."""
    import av

    path = Path(path)
    # use_metadata_tags: the MP4 muxer otherwise drops tags it does not know (the embedded workflow).
    with av.open(str(path), mode="w", options={"movflags": "use_metadata_tags"}) as container:
        for key, value in (metadata or {}).items():
            container.metadata[key] = value
        stream = None
        for frame in frames:
            image = to_uint8(frame)
            if stream is None:
                height, width = image.shape[0] + image.shape[0] % 2, image.shape[1] + image.shape[1] % 2
                stream = container.add_stream("libx264", rate=_fraction(fps))
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.options = {"crf": str(quality)}
            image = np.pad(image, ((0, stream.height - image.shape[0]), (0, stream.width - image.shape[1]), (0, 0)),
                           mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise VividZooError(f"no frames to write to {path.name}")
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_webp(path: str | Path, frames: Iterable[torch.Tensor], fps: float = DEFAULT_FPS, quality: int = 90,
               exif: bytes | None = None) -> Path:
    """Animated WebP: previews anywhere, no ffmpeg needed."""
    images = [Image.fromarray(to_uint8(frame)) for frame in frames]
    if not images:
        raise VividZooError(f"no frames to write to {Path(path).name}")
    options = {"exif": exif} if exif else {}
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0,
                   quality=quality, **options)
    return Path(path)


def save_video(video: MultiViewVideo, out_dir: str | Path, *, view_videos: bool = True, frames: bool = True,
               metadata: dict[str, str] | None = None, exif: Image.Exif | bytes | None = None) -> dict[str, Path]:
    """Writes one multi-view video into ``out_dir`` under the names above.

    Always ``grid.mp4`` (views side by side) and ``grid.webp`` (animated preview); with ``view_videos``
    ``view_XX.mp4``; with ``frames`` every frame as ``frames/fFFF_vVV.png``, plus ``transforms.json`` when
    the cameras are known; ``cameras.json`` when they are known; ``info.json`` when the video has settings.
    ``condition_views/0.png`` ... when it was conditioned on images (Animate3D).
    ``metadata`` adds MP4 tags (ComfyUI: the workflow) and ``exif`` goes into the WebP.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tags = {"comment": json.dumps(video.info)} if video.info else {}
    tags.update(metadata or {})
    fps, count = video.fps, video.frame_count
    written = {
        "grid_mp4": write_mp4(out / GRID_MP4, _grid_frames(video.frames), fps, metadata=tags),
        "grid_webp": write_webp(out / GRID_WEBP, _grid_frames(video.frames), fps, exif=exif),
    }
    if view_videos:
        for v in range(video.views):
            frames_of_view = (video.frames[f, v] for f in range(count))
            written[f"view_{v:02d}"] = write_mp4(out / view_video_name(v), frames_of_view, fps, metadata=tags)
    if frames:
        (out / FRAMES_FOLDER).mkdir(exist_ok=True)
        for f in range(count):
            for v in range(video.views):
                Image.fromarray(to_uint8(video.frames[f, v])).save(out / frame_name(f, v))
        written["frames"] = out / FRAMES_FOLDER
    if video.cameras is not None:
        video.cameras.save(out / CAMERAS_FILE)
        written["cameras"] = out / CAMERAS_FILE
        if frames:
            height, width = video.frames.shape[2:4]
            transforms = transforms_json(video.cameras, width, height, frame_name)
            (out / TRANSFORMS_FILE).write_text(json.dumps(transforms, indent=1))
            written["transforms"] = out / TRANSFORMS_FILE
    if video.info:
        (out / INFO_FILE).write_text(json.dumps(video.info, indent=1))
        written["info"] = out / INFO_FILE
    if video.condition_views is not None:
        (out / CONDITION_FOLDER).mkdir(exist_ok=True)
        for view, image in enumerate(video.condition_views):
            Image.fromarray(to_uint8(image)).save(out / CONDITION_FOLDER / f"{view}.png")
        written["condition_views"] = out / CONDITION_FOLDER
    return written


def save_video_or_rescue(video: MultiViewVideo, out_dir: str | Path, **options) -> dict[str, Path]:
    """:func:`save_video` (same ``options``); if writing fails, the video is saved in a new temp folder instead.

    Raises a VividZooError that says what failed and where the video is: written in full there, or,
    if the writers fail there too, as ``frames.npz`` (see :func:`rescue_frames`).
    """
    try:
        return save_video(video, out_dir, **options)
    except Exception as error:  # any writer failure (OSError, PyAV, Pillow): keep the finished work
        problem = f"could not write the outputs to {out_dir} ({type(error).__name__}: {error})"
    raise VividZooError(f"{problem}; {rescue_video(video, **options)}")


def rescue_video(video: MultiViewVideo, **options) -> str:
    """Saves a finished video that could not be written where it was asked in a new temp folder; says where.

    Written in full by :func:`save_video` there, or, if the writers fail there too, as ``frames.npz``.
    """
    rescue = rescue_folder()
    try:
        save_video(video, rescue, **options)
        return f"the finished video was written to {rescue} instead"
    except Exception:  # the writers fail anywhere (a codec error): keep the frames without them
        return rescue_frames(video.frames, rescue / "frames.npz", video.cameras, video.fps, video.info)


def rescue_folder() -> Path:
    """A new folder in the temp dir for a finished video that could not be written where it was asked."""
    return Path(tempfile.mkdtemp(prefix="vividzoo-rescued-"))


def rescue_frames(frames: torch.Tensor, path: str | Path, cameras: CameraRig | None = None, fps: float = DEFAULT_FPS,
                  info: dict | None = None) -> str:
    """Saves ``(F, V, H, W, 3)`` frames as uint8 in a NumPy ``.npz`` (no codec needed); says where and what."""
    arrays = {"frames": to_uint8(frames), "fps": np.array(fps), "info": np.array(json.dumps(info or {}))}
    if cameras is not None:
        arrays["cameras"] = cameras.matrices
    np.savez(path, **arrays)
    return (f"the finished frames are saved in {path} (numpy.load: 'frames' uint8 (frames, views, height, width, 3)"
            f"{', cameras (frames, views, 4, 4)' if cameras is not None else ''}, fps, info)")


def _grid_frames(frames: torch.Tensor) -> Iterator[torch.Tensor]:
    for f in range(frames.shape[0]):
        yield views_to_grid(frames[f : f + 1])[0]


def _fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)

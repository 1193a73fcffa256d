"""What ``vividzoo reconstruct`` reads, checked before any weights load: a multi-view video and its cameras.

Sources, all giving ``(frames, 4, H, W, 3)`` floats in [0, 1] and a :class:`~vividzoo_core.cameras.CameraRig`:

- a result folder of ``vividzoo generate`` / ``vividzoo animate`` (or of the Combine node): ``frames/fFFF_vVV.png``,
  else ``view_XX.mp4``, else a rescued ``frames.npz``; its ``cameras.json``; the frame rate from ``info.json`` or
  the view videos;
- a run folder of ``generate --prompts``: one such result per subfolder, each reconstructed on its own;
- 4 view videos (or image folders) and a cameras file.

Every problem is one line naming the file or value and what would fit (:class:`VividZooError`): not 4 views,
frames or a size the models cannot take, no cameras, NaN frames, a file that is not a video, an output folder
that already holds something (nothing is ever overwritten).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .cameras import CAMERAS_FILE, CameraRig, load_cameras
from .data.format import IMAGE_SUFFIXES
from .data.frames import VideoFrames
from .errors import VividZooError
from .layout import VideoLayout
from .lgm_cameras import INPUT_SIZE, ray_poses
from .network.lgm_inputs import resized
from .settings import FPS, FRAMES
from .video import FRAMES_FOLDER, read_info, read_saved_frames, saved_frame_grid, view_video_name

MODEL_VIEWS = 4
"""LGM and L4GM take exactly 4 views (azimuth 0/90/180/270 from the first)."""
INTERPOLATION_MIN_FRAMES = 2
"""The interpolation model needs a pair of frames to put frames between."""
RESCUED_FRAMES = "frames.npz"
"""What :func:`vividzoo_core.video.rescue_frames` writes when no video writer works."""
RECONSTRUCTION_FOLDER = "reconstruction"
"""Where a result's Gaussians go by default: a new subfolder of the result folder."""


@dataclass
class ReconstructionInput:
    frames: torch.Tensor
    """``(frames, 4, H, W, 3)`` float in [0, 1]."""
    cameras: CameraRig
    """One row per frame (a static rig repeated)."""
    fps: float
    source: Path
    """The folder or first video it came from, for messages."""
    info: dict = field(default_factory=dict)
    """The ``info.json`` of the result (prompt, settings), kept in the reconstruction's own info."""

    @property
    def frame_count(self) -> int:
        return self.frames.shape[0]


def find_results(folder: Path) -> list[Path]:
    """The result folders in ``folder``: itself when it holds a video, else every subfolder that does (sorted)."""
    if not folder.is_dir():
        raise VividZooError(f"{folder} is not a folder; give a folder written by `vividzoo generate` or `animate`")
    if _holds_video(folder):
        return [folder]
    results = sorted(p for p in folder.iterdir() if p.is_dir() and _holds_video(p))
    if not results:
        raise VividZooError(f"{folder} holds no multi-view video (frames/fFFF_vVV.png, view_XX.mp4 or "
                            f"{RESCUED_FRAMES}), nor subfolders with one; give a `vividzoo generate` output folder")
    return results


def _holds_video(folder: Path) -> bool:
    return ((folder / FRAMES_FOLDER).is_dir() or (folder / view_video_name(0)).is_file()
            or (folder / RESCUED_FRAMES).is_file())


def read_result(folder: Path, cameras: CameraRig | None = None, fps: float | None = None) -> ReconstructionInput:
    """One result folder: its frames (PNG frames, else view videos, else the rescued ``frames.npz``) and cameras."""
    info = read_info(folder)
    rescued = folder / RESCUED_FRAMES
    if (folder / FRAMES_FOLDER).is_dir():
        frames = read_saved_frames(folder, *saved_frame_grid(folder))
    elif (folder / view_video_name(0)).is_file():
        videos = sorted(folder.glob("view_*.mp4"))
        frames, video_fps = read_view_videos(videos)
        fps = fps or video_fps
    else:
        frames, npz_cameras, npz_fps = _rescued(rescued)
        cameras, fps = cameras or npz_cameras, fps or npz_fps
    if cameras is None:
        if not (folder / CAMERAS_FILE).is_file():
            raise VividZooError(f"{folder} has no {CAMERAS_FILE}: the models need each view's camera; give "
                                "--cameras FILE (our camera JSON or a transforms.json)")
        cameras = load_cameras(folder / CAMERAS_FILE)
    fps = fps or info.get("fps") or FPS.default
    return ReconstructionInput(frames, cameras, float(fps), folder, info)


def read_view_videos(paths: list[Path]) -> tuple[torch.Tensor, float]:
    """``view_00.mp4`` ... (one video per view, in view order): ``(frames, views, H, W, 3)`` and the frame rate."""
    images = [Path(path) for path in paths if Path(path).suffix.lower() in IMAGE_SUFFIXES]
    if images:
        raise VividZooError(f"{images[0]} is an image, not a video; give the 4 view videos (view_00.mp4 ...), or the "
                            "run folder that holds frames/")
    sources = [VideoFrames(Path(path)) for path in paths]
    counts = {source.count for source in sources}
    if len(counts) != 1:
        raise VividZooError(f"the view videos have different frame counts: "
                            f"{', '.join(f'{s.name} {s.count}' for s in sources)}; give videos of one length")
    count = counts.pop()
    views = [[np.asarray(image.convert("RGB")) for image in source.read(range(count))] for source in sources]
    sizes = {image.shape for view in views for image in view}
    if len(sizes) != 1:
        raise VividZooError(f"the view videos have different sizes {sorted(s[:2] for s in sizes)}; give one size")
    frames = torch.from_numpy(np.stack(views, axis=1)).float() / 255.0
    return frames, float(sources[0].fps)


def _rescued(path: Path) -> tuple[torch.Tensor, CameraRig | None, float]:
    try:
        with np.load(path) as data:
            frames = data["frames"]
            cameras = CameraRig(np.asarray(data["cameras"], dtype=np.float64)) if "cameras" in data else None
            fps = float(data["fps"]) if "fps" in data else FPS.default
    except (OSError, ValueError, KeyError) as error:
        raise VividZooError(f"{path}: not a rescued frames file ({error})") from None
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise VividZooError(f"{path}: 'frames' has shape {frames.shape}, expected (frames, views, H, W, 3)")
    scale = 255.0 if frames.dtype == np.uint8 else 1.0
    return torch.from_numpy(np.asarray(frames, dtype=np.float32)) / scale, cameras, fps


def check_input(video: ReconstructionInput, interpolate: bool = False,
                input_size: int = INPUT_SIZE) -> tuple[CameraRig, list[str]]:
    """Refuses what the models cannot take; the cameras (one row per frame) and warnings (another elevation...)."""
    frames = video.frames
    where = str(video.source)
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise VividZooError(f"{where}: expected frames (frames, views, H, W, 3), got {tuple(frames.shape)}")
    count, views, height, width = frames.shape[:4]
    check_shape(where, count, views, height, width, interpolate, input_size)
    bad = ~torch.isfinite(frames)
    if bad.any():
        f, v = (int(i) for i in bad.nonzero()[0][:2])
        raise VividZooError(f"{where}: frame {f} view {v} has NaN or infinite values ({int(bad.sum())} in all); "
                            "the video is damaged, generate it again")
    return check_cameras(where, video.cameras, count, interpolate)


def check_shape(where: str, count: int, views: int, height: int, width: int, interpolate: bool = False,
                input_size: int = INPUT_SIZE) -> None:
    """Refuses a video of ``count`` frames x ``views`` views of ``width`` x ``height`` the models cannot take."""
    if views != MODEL_VIEWS:
        raise VividZooError(f"{where}: {views} views, but LGM and L4GM take exactly {MODEL_VIEWS} (azimuth "
                            "0/90/180/270); generate with --views 4")
    problem = FRAMES.problem(count)
    if problem:
        raise VividZooError(f"{where}: {problem}")
    if interpolate and count < INTERPOLATION_MIN_FRAMES:
        raise VividZooError(f"{where}: {count} frame; the interpolation model needs at least "
                            f"{INTERPOLATION_MIN_FRAMES} (it adds frames between neighbours); leave out --interp")
    try:
        resized(torch.zeros(1, 3, height, width), input_size)
    except VividZooError as error:
        raise VividZooError(f"{where}: {error}") from None


def check_cameras(where: str, cameras: CameraRig, count: int,
                  interpolate: bool = False) -> tuple[CameraRig, list[str]]:
    """The rig for ``count`` frames of 4 views, refused where the models cannot use it; the warnings it gives."""
    try:
        cameras = cameras.for_layout(VideoLayout(MODEL_VIEWS, count))
        _, warnings = ray_poses(cameras)
    except VividZooError as error:
        raise VividZooError(f"{where} cameras: {error}") from None
    if interpolate and not np.allclose(cameras.matrices, cameras.matrices[:1], atol=1e-6):
        raise VividZooError(f"{where}: the cameras move between frames; the interpolation model needs the same "
                            "cameras at every frame (its in-between frames have none); leave out --interp")
    return cameras, warnings


def check_output(out: Path) -> None:
    """Refuses an output folder that holds anything: nothing is ever overwritten."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VividZooError(f"{out} already exists and is not empty; nothing is overwritten: give another --out "
                            "or move it away")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise VividZooError(f"cannot write to {out}: {parent} is not a folder")


@dataclass
class Job:
    video: ReconstructionInput
    out: Path


def plan_jobs(run_dir: Path | None = None, videos: list[Path] | None = None, cameras: CameraRig | None = None,
              out: Path | None = None, interpolate: bool = False, input_size: int = INPUT_SIZE,
              log: Callable[[str], None] = print) -> list[Job]:
    """Every video to reconstruct and where its files go, all read and checked (nothing loaded or written yet).

    ``run_dir``: a result folder, or a run folder of several (each its own job, written to ``out/NAME`` or
    ``RESULT/reconstruction``). ``videos``: 4 view videos in view order, with ``cameras`` (required then)."""
    if videos is not None:
        if cameras is None:
            raise VividZooError("--videos needs --cameras FILE: the models need each view's camera")
        frames, fps = read_view_videos(videos)
        source = Path(videos[0]).parent
        sources = [(ReconstructionInput(frames, cameras, fps, source), out or source / RECONSTRUCTION_FOLDER)]
    else:
        results = find_results(run_dir)
        several = len(results) > 1
        sources = [(read_result(result, cameras),
                    (out / result.name if several else out) if out else result / RECONSTRUCTION_FOLDER)
                   for result in results]
    jobs = []
    for video, target in sources:
        _, warnings = check_input(video, interpolate, input_size)
        check_output(target)
        for warning in warnings:
            log(f"warning: {video.source}: {warning}")
        jobs.append(Job(video, target))
    return jobs

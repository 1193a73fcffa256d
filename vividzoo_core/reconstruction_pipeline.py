"""Multi-view video -> 3D Gaussians per frame (LGM) or over time (L4GM, optionally 3x the frames), standalone.

The pieces are the reconstruction family's (:mod:`vividzoo_core.network.lgm` the network,
:mod:`vividzoo_core.network.lgm_inputs` the 9-channel input and L4GM's view rule,
:mod:`vividzoo_core.network.l4gm_runs` the runs over long videos, :mod:`vividzoo_core.lgm_cameras` the cameras);
this module drives them over a video and scores the result:

- LGM: every frame on its own, its 4 views at that frame's cameras.
- L4GM: windows of 16 frames (:func:`l4gm_runs`); at each frame view 0 from the video and views 1-3 from frame 0,
  with frame 0's cameras for those views (``moving_views``: all 4 views of each frame, at that frame's cameras).
- Interpolation (L4GM only): between each pair of neighbouring frames, the 4-frame model starts from view 0 of the
  video and views 1-3 rendered from L4GM's Gaussians (``infer_4d.py``), and 2 frames are kept in between; output
  ``3 i`` is input frame ``i``. It needs the same cameras at every frame (the in-between frames have no camera).
- The score (:mod:`vividzoo_core.reconstruction_score`): each output frame that is an input frame, rendered at
  that frame's 4 cameras and compared with the 4 views of the video.

The Gaussians are in the model's frame (the video's first camera moved to LGM's canonical pose), as the
originals save them; the cameras of that frame are written beside them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoints.reconstruction import KIND_NAMES, L4GM, L4GM_INTERP, LGM, load_reconstruction
from .devices import resolve_device, resolve_dtype
from .errors import VividZooError
from .gaussian_sequence import GaussianSequence, TurntableSettings, save_gaussian_sequence
from .lgm_cameras import INPUT_SIZE, plucker_rays, ray_poses
from .network.l4gm_runs import interpolation_pairs, l4gm_runs
from .network.lgm import build_network
from .network.lgm_inputs import interpolation_views, l4gm_views, model_input, resized
from .reconstruction_inputs import ReconstructionInput, check_input
from .reconstruction_score import ReconstructionScore, reconstruction_scores
from .splatting import SplatCamera, render
from .video import INFO_FILE

Network = Callable[[torch.Tensor], torch.Tensor]
"""``[1, T, 4, 9, S, S]`` -> ``[1, T, N, 14]``: :class:`~vividzoo_core.network.lgm.LGMNetwork` or a stand-in."""
INTERPOLATION_RATE = 3
"""Output frames per input frame with the interpolation model (``interpolate_rate`` of ``infer_4d.py``)."""
INTERPOLATION_NEEDS_L4GM = ("the interpolation model (interp.safetensors) works on L4GM's Gaussians: use it with L4GM "
                            "(recon.safetensors), not LGM")
BACKGROUND = (1.0, 1.0, 1.0)
"""LGM and L4GM render on white (their training views are composited on white)."""


@dataclass
class Reconstruction:
    gaussians: list[torch.Tensor]
    """One ``(N, 14)`` float32 tensor per output frame (on the pipeline's device), in the model's frame."""
    fps: float
    input_frames: list[int | None]
    """The input frame each output frame shows; None for an interpolated in-between frame."""
    poses: np.ndarray
    """``(input frames, 4, 4, 4)``: each input frame's 4 cameras in the Gaussians' frame (kiui's OpenGL axes)."""
    warnings: list[str] = field(default_factory=list)
    score: ReconstructionScore | None = None


class ReconstructionPipeline:
    """A reconstruction network (LGM or L4GM), L4GM's interpolation model optionally, on a device."""

    def __init__(self, kind: str, network: Network, interpolation: Network | None = None,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 input_size: int = INPUT_SIZE, names: dict[str, str] | None = None) -> None:
        if kind not in (LGM, L4GM):
            raise ValueError(f"kind must be {LGM!r} or {L4GM!r}, got {kind!r}")
        if interpolation is not None and kind != L4GM:
            raise VividZooError(INTERPOLATION_NEEDS_L4GM)
        self.kind, self.network, self.interpolation = kind, network, interpolation
        self.device, self.dtype, self.input_size = torch.device(device), dtype, input_size
        self.names = names or {}

    @classmethod
    def from_files(cls, kind: str, model: str | Path, interpolation: str | Path | None = None,
                   device: str = "auto", dtype: str = "auto", input_size: int = INPUT_SIZE) -> ReconstructionPipeline:
        """Loads (strictly: a file of another kind is refused naming both) and builds the networks."""
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        if interpolation is not None and kind != L4GM:
            raise VividZooError(INTERPOLATION_NEEDS_L4GM)
        checkpoint = load_reconstruction(model, kind)
        interp_checkpoint = load_reconstruction(interpolation, L4GM_INTERP) if interpolation is not None else None
        names = {kind: Path(model).name}
        if interpolation is not None:
            names[L4GM_INTERP] = Path(interpolation).name
        network = build_network(checkpoint, torch_device, torch_dtype)
        interp = build_network(interp_checkpoint, torch_device, torch_dtype) if interp_checkpoint else None
        return cls(kind, network, interp, torch_device, torch_dtype, input_size, names)

    @property
    def description(self) -> str:
        text = KIND_NAMES[self.kind].split(" (")[0]
        return text + (" + interpolation (3x frames)" if self.interpolation is not None else "")

    @torch.no_grad()
    def reconstruct(self, video: ReconstructionInput, moving_views: bool = False, score: bool = True) -> Reconstruction:
        """Gaussians for every frame of ``video`` (checked here again: callers may skip :func:`check_input`)."""
        interpolate = self.interpolation is not None
        cameras, warnings = check_input(video, interpolate, self.input_size)
        poses, _ = ray_poses(cameras)
        images = video.frames.movedim(-1, -3)  # (frames, 4, 3, H, W)
        if self.kind == LGM:
            gaussians = [self._run(self.network, images[f:f + 1], poses[f:f + 1])[0] for f in range(len(images))]
            inputs: list[int | None] = list(range(len(images)))
        else:
            gaussians = self._l4gm(images, poses, moving_views)
            inputs = list(range(len(images)))
            if interpolate:
                gaussians, inputs = self._interpolate(images, poses, gaussians)
        fps = video.fps * (INTERPOLATION_RATE if interpolate else 1)
        sequence = Reconstruction(gaussians, fps, inputs, poses, warnings)
        if score:
            sequence.score = score_sequence(sequence, video.frames)
        return sequence

    def _run(self, network: Network, images: torch.Tensor, poses: np.ndarray | torch.Tensor) -> list[torch.Tensor]:
        """``images (T, 4, 3, H, W)`` seen by ``poses (T, 4, 4, 4)`` through ``network``: T ``(N, 14)`` tensors."""
        rays = plucker_rays(poses, self.input_size)
        inputs = model_input(images, rays, self.input_size).to(self.device, self.dtype)
        return list(network(inputs)[0].float())  # on the device: the renders (score, interpolation) run there

    def _l4gm(self, images: torch.Tensor, poses: np.ndarray, moving_views: bool) -> list[torch.Tensor]:
        out = []
        for run in l4gm_runs(len(images)):
            index = list(run.frames)
            views = l4gm_views(images[index], images[0], moving=moving_views)
            # The same rule for the cameras: each image keeps the rays of the camera that saw it.
            run_poses = l4gm_views(torch.from_numpy(poses[index]), torch.from_numpy(poses[0]), moving=moving_views)
            kept = self._run(self.network, views, run_poses)
            out += [kept[p] for p in run.keep]
        return out

    def _interpolate(self, images: torch.Tensor, poses: np.ndarray,
                     gaussians: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[int | None]]:
        """3x the frames: input frame ``i`` at output ``3 i``, two interpolated frames after each but the last."""
        size = self.input_size
        cameras = [SplatCamera(pose) for pose in poses[0]]

        def model_views(frame: int) -> torch.Tensor:
            # View 0 from the video, views 1-3 rendered from L4GM's Gaussians of the frame (infer_4d.py).
            rendered = [render(gaussians[frame], camera, size, size, BACKGROUND).image.clamp(0, 1).movedim(-1, 0).cpu()
                        for camera in cameras[1:]]
            return torch.cat([resized(images[frame, :1], size), torch.stack(rendered)])

        out, inputs = [], []
        for pair in interpolation_pairs(len(images)):
            window = interpolation_views(model_views(pair.start), model_views(pair.end))
            result = self._run(self.interpolation, window, np.repeat(poses[:1], len(window), axis=0))
            for position in pair.keep:
                out.append(result[position])
                inputs.append(pair.start if position == 0 else pair.end if position == len(window) - 1 else None)
        return out, inputs


def score_sequence(sequence: Reconstruction, frames: torch.Tensor) -> ReconstructionScore:
    """The output frames that are input frames, rendered at their frame's 4 cameras, against the video's views."""
    shown = [(out, frame) for out, frame in enumerate(sequence.input_frames) if frame is not None]
    cameras = [[SplatCamera(pose) for pose in sequence.poses[frame]] for _, frame in shown]
    score = reconstruction_scores([sequence.gaussians[out] for out, _ in shown],
                                  frames[[frame for _, frame in shown]], cameras, BACKGROUND)
    for entry, (_, frame) in zip(score.frames, shown):
        entry.frame = frame
    return score


def sequence_info(reconstruction: Reconstruction, pipeline: ReconstructionPipeline, video: ReconstructionInput,
                  moving_views: bool) -> dict:
    """What ``info.json`` (and the manifest's ``info``) says: the models, the inputs, the rule, the score."""
    from . import __version__

    info = {
        "vividzoo_version": __version__,
        "model": pipeline.description,
        "files": pipeline.names,
        "source": str(video.source),
        "input_frames": video.frame_count,
        "output_frames": len(reconstruction.gaussians),
        "fps": reconstruction.fps,
        "output_to_input_frame": reconstruction.input_frames,
        "warnings": reconstruction.warnings,
        "video": video.info,
    }
    if pipeline.kind == L4GM:
        info["views_fed"] = ("all 4 views of every frame (outside L4GM's training distribution)" if moving_views
                             else "view 0 of every frame, views 1-3 of frame 0 (L4GM's rule)")
    if reconstruction.score is not None:
        info["score"] = reconstruction.score.to_json()
    return info


def save_reconstruction(reconstruction: Reconstruction, out: str | Path, info: dict, preview: bool = True,
                        preview_size: int = INPUT_SIZE) -> dict[str, Path]:
    """The PLYs, manifest and turntable (:func:`save_gaussian_sequence`), and ``info.json``, into ``out``."""
    out = Path(out)
    poses = reconstruction.poses
    static = np.allclose(poses, poses[:1], atol=1e-6)
    cameras = [[SplatCamera(pose) for pose in row] for row in (poses[:1] if static else poses)]
    sequence = GaussianSequence(reconstruction.gaussians, reconstruction.fps, cameras, info)
    written = save_gaussian_sequence(sequence, out, turntable_settings=TurntableSettings(size=preview_size),
                                     preview=preview)
    (out / INFO_FILE).write_text(json.dumps(info, indent=1))
    written["info"] = out / INFO_FILE
    return written

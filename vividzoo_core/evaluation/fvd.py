"""Fréchet Video Distance with the Kinetics-400 I3D TorchScript used by StyleGAN-V and later video papers.

The detector is ``i3d_torchscript.pt`` (see README 'Evaluate'). It is called exactly as StyleGAN-V's
``metrics/frechet_video_distance.py`` does: a ``uint8`` batch ``(clips, 3, frames, H, W)`` with values
0..255, and ``rescale=True, resize=True, return_features=True`` -- the module itself scales to [-1, 1],
resizes to 224 x 224 and returns the 400 logits before the softmax, the features of the TF FVD.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.frames import on_white
from ..data.reader import VideoObject, clip_span, scan_dataset
from ..errors import VividZooError

I3D_FILE = "i3d_torchscript.pt"
I3D_KWARGS = {"rescale": True, "resize": True, "return_features": True}
MIN_I3D_FRAMES = 9
"""The I3D's temporal pooling needs 9 frames; FVD is defined (and StyleGAN-V reports it) on 16-frame clips."""
CLIP_BATCH = 8


def to_uint8_clips(clips: torch.Tensor) -> torch.Tensor:
    """``(clips, frames, H, W, 3)`` in [0, 1] -> ``(clips, 3, frames, H, W)`` uint8, the I3D input layout."""
    return (clips.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 4, 1, 2, 3).contiguous()


class I3DFeatures:
    def __init__(self, detector: torch.jit.ScriptModule, device: torch.device) -> None:
        self.detector, self.device = detector, device
        self.dimension = 0
        """Feature size, found by the probe in :meth:`from_file` (400 for the real I3D)."""

    @classmethod
    def from_file(cls, path: str | Path, device: torch.device | str = "cpu") -> I3DFeatures:
        """Loads the TorchScript file and checks it answers the calling convention on one small clip."""
        path, device = Path(path), torch.device(device)
        try:
            detector = torch.jit.load(str(path), map_location=device).eval()
        except (RuntimeError, ValueError) as error:
            raise VividZooError(f"{path} is not a TorchScript file ({str(error).splitlines()[0]}); "
                                f"FVD needs StyleGAN-V's {I3D_FILE}") from None
        features = cls(detector, device)
        try:
            probe = features.features(torch.zeros(1, 16, 64, 64, 3))
        except (RuntimeError, TypeError, VividZooError) as error:
            message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise VividZooError(f"{path} does not work as the I3D feature extractor ({message}); "
                                f"FVD needs StyleGAN-V's {I3D_FILE}") from None
        features.dimension = probe.shape[1]
        return features

    @torch.no_grad()
    def features(self, clips: torch.Tensor) -> np.ndarray:
        """``(clips, frames, H, W, 3)`` in [0, 1] -> ``(clips, D)`` float64 features."""
        rows = []
        for batch in clips.split(CLIP_BATCH):
            try:
                output = self.detector(to_uint8_clips(batch).to(self.device), **I3D_KWARGS)
            except RuntimeError as error:  # TorchScript errors end with the actual problem
                raise VividZooError(f"the I3D detector failed on clips of {tuple(batch.shape[1:4])} frames x H x W: "
                                    f"{str(error).strip().splitlines()[-1]}") from None
            if not isinstance(output, torch.Tensor) or output.ndim != 2 or output.shape[0] != batch.shape[0]:
                shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                raise VividZooError(f"the detector returned {shape}, not one feature row per clip")
            rows.append(output.double().cpu().numpy())
        return np.concatenate(rows)


def reference_frame(image: Image.Image, size: int) -> torch.Tensor:
    """``(size, size, 3)`` in [0, 1]: transparency on white, then StyleGAN-V's dataset conversion.

    As ``process_video`` in StyleGAN-V's ``src/scripts/convert_videos_to_frames.py`` with the torchvision it
    pins (0.8.2): the shorter side becomes ``size`` and the longer ``int(size * long / short)`` (truncated;
    no resize when the shorter side already fits), LANCZOS, then a centre crop at offset
    ``int((excess + 1) * 0.5)``. StyleGAN-V then stores the frames as JPEG; that step is not reproduced.
    """
    image = on_white(image)
    width, height = image.size
    short, long = min(width, height), max(width, height)
    if short != size:
        scaled = (size, int(size * long / short))
        image = image.resize(scaled if width <= height else scaled[::-1], Image.Resampling.LANCZOS)
    left, top = int((image.width - size + 1) * 0.5), int((image.height - size + 1) * 0.5)
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)


def reference_clips(dataset: str | Path, frames: int, stride: int, size: int,
                    log: Callable[[str], None] = print) -> tuple[int, Iterator[torch.Tensor]]:
    """One clip per view of every usable object in a dataset folder (vividzoo_core/data/format.py).

    Returns the object count and an iterator of ``(views, frames, size, size, 3)`` in [0, 1] per object:
    frames ``0, stride, ...`` of each view, converted to the generated videos' size by
    :func:`reference_frame`, so both sides reach I3D's own resize to 224 from the same resolution.
    """
    report = scan_dataset(dataset, views=1, frames_needed=clip_span(frames, stride), decode_images=False)
    if not report.objects:
        raise VividZooError(f"{dataset}: no object has {clip_span(frames, stride)} frames for {frames}-frame "
                            f"reference clips at stride {stride} ({len(report.problems)} problems; "
                            f"`vividzoo dataset check {dataset} --frames {frames} --stride {stride}` lists them)")
    if report.problems:
        log(f"note: {len(report.problems)} reference objects skipped (`vividzoo dataset check {dataset}` lists why)")
    return len(report.objects), _object_clips(report.objects, frames, stride, size)


def _object_clips(objects: list[VideoObject], frames: int, stride: int, size: int) -> Iterator[torch.Tensor]:
    for video in objects:
        indices = [f * stride for f in range(frames)]
        yield torch.stack([torch.stack([reference_frame(image, size) for image in source.read(indices)])
                           for source in video.sources])

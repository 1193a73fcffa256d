"""The frames of one view, from a folder of images or from a video file: one interface for both.

A :class:`FrameSource` knows its frame count without decoding and reads only the frames asked for.
:class:`VideoFrames` seeks to the keyframe at or before the first wanted frame and decodes forward
(PyAV), so a 16-frame clip from a 48-frame video decodes at most the frames up to the last one
wanted after that keyframe. Frame ``i`` of a video is the frame shown at ``i / fps`` after the start.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import VividZooError


class FrameSource(Protocol):
    name: str
    """The view as a user finds it: a folder name or a file name."""

    @property
    def count(self) -> int: ...

    def read(self, indices: Sequence[int]) -> list[Image.Image]:
        """The frames at ``indices`` (any order, repeats allowed), as RGBA or RGB PIL images."""
        ...

    def unreadable(self) -> list[str]:
        """Decodes every frame; one line per problem (paths relative to the object folder)."""
        ...


@dataclass
class ImageFrames:
    """A folder of numbered images, ``paths[frame]``."""

    name: str
    paths: list[Path]

    @property
    def count(self) -> int:
        return len(self.paths)

    def read(self, indices: Sequence[int]) -> list[Image.Image]:
        images = []
        for index in indices:
            with Image.open(self.paths[index]) as image:
                image.load()
                images.append(image)
        return images

    def unreadable(self) -> list[str]:
        problems = []
        for path in self.paths:
            try:
                with Image.open(path) as image:
                    image.load()
            except (OSError, ValueError, SyntaxError) as error:
                problems.append(f"unreadable image {Path(path.parent.parent.name, path.parent.name, path.name)} ({error})")
        return problems


class VideoFrames:
    """One video file per view; the frame count comes from the container header (no decoding)."""

    def __init__(self, path: Path) -> None:
        import av

        self.path, self.name = path, path.name
        try:
            with av.open(str(path)) as container:
                stream = self._stream(container)
                self.fps = Fraction(stream.average_rate or stream.guessed_rate or 0)
                self._count = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        except av.FFmpegError as error:
            raise VividZooError(f"{self._where()}: not a readable video ({error})") from None
        if not self.fps:
            raise VividZooError(f"{self._where()}: the video has no frame rate")

    @property
    def count(self) -> int:
        return self._count

    def read(self, indices: Sequence[int]) -> list[Image.Image]:
        import av

        wanted = sorted(set(indices))
        if not wanted:
            return []
        if wanted[0] < 0 or wanted[-1] >= self._count:
            raise VividZooError(f"{self._where()}: has {self._count} frames, frame {wanted[-1]} was asked for")
        found: dict[int, Image.Image] = {}
        with av.open(str(self.path)) as container:
            stream = self._stream(container)
            start = stream.start_time or 0
            # backward=True lands on the keyframe at or before the timestamp: decoding forward reaches it.
            container.seek(start + int(wanted[0] / self.fps / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                index = round((frame.pts - start) * stream.time_base * self.fps)
                if index in wanted:
                    found[index] = frame.to_image()
                if index >= wanted[-1]:
                    break
        missing = [i for i in wanted if i not in found]
        if missing:
            raise VividZooError(f"{self._where()}: frame(s) {missing[:5]} could not be decoded "
                                f"(the header says {self._count} frames)")
        return [found[i] for i in indices]

    def unreadable(self) -> list[str]:
        import av

        try:
            with av.open(str(self.path)) as container:
                decoded = sum(1 for _ in container.decode(self._stream(container)))
        except av.FFmpegError as error:
            return [f"video {self._where()} stops decoding ({error})"]
        if decoded != self._count:
            return [f"video {self._where()} decodes to {decoded} frames but its header says {self._count}"]
        return []

    def _stream(self, container):
        if not container.streams.video:
            raise VividZooError(f"{self._where()}: the file has no video stream")
        return container.streams.video[0]

    def _where(self) -> str:
        return str(Path(self.path.parent.name, self.path.name))


def on_white(image: Image.Image) -> Image.Image:
    """The RGB image seen on a white background (renders are RGBA with a transparent background)."""
    image = image.convert("RGBA")
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, image).convert("RGB")


def prepare_image(image: Image.Image, size: int) -> torch.Tensor:
    """``(3, size, size)`` in [-1, 1]: transparency on white, shorter side resized, centre-cropped."""
    image = square(on_white(image), size)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)


def square(image: Image.Image, size: int) -> Image.Image:
    """``size`` x ``size``: the shorter side resized to ``size`` (bicubic), then centre-cropped."""
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def load_image(path: Path, size: int) -> torch.Tensor:
    """One image file as :func:`prepare_image` gives it."""
    with Image.open(path) as image:
        return prepare_image(image, size)

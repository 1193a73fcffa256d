"""The frames of one view, from a folder of images or from a video file: one interface for both.

A :class:`FrameSource` knows its frame count without decoding and reads only the frames asked for.
:class:`VideoFrames` seeks to the keyframe at or before the first wanted frame and decodes forward
(PyAV), so a 16-frame clip from a 48-frame video decodes at most the frames up to the last one
wanted after that keyframe. Frame ``i`` of a video is the frame shown at ``i / fps`` after the start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol, overload

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
        """The frames at ``indices`` (any order, repeats allowed), as RGBA or RGB PIL images; a
        :class:`VividZooError` naming the file when one cannot be read."""
        ...

    def unreadable(self) -> list[str]:
        """Decodes every frame; one line per problem (paths relative to the object folder)."""
        ...


@dataclass
class ImageFrames:
    """A folder of numbered images, ``paths[frame]``."""

    name: str
    paths: Sequence[Path]

    @property
    def count(self) -> int:
        return len(self.paths)

    def read(self, indices: Sequence[int]) -> list[Image.Image]:
        images = []
        for index in indices:
            try:
                with Image.open(self.paths[index]) as image:
                    image.load()
            except (OSError, ValueError, SyntaxError) as error:
                raise VividZooError(f"unreadable image {self._where(self.paths[index])} ({error})") from None
            images.append(image)
        return images

    def unreadable(self) -> list[str]:
        problems = []
        for path in self.paths:
            try:
                with Image.open(path) as image:
                    image.load()
            except (OSError, ValueError, SyntaxError) as error:
                problems.append(f"unreadable image {self._where(path)} ({error})")
        return problems

    @staticmethod
    def _where(path: Path) -> Path:
        return Path(path.parent.parent.name, path.parent.name, path.name)


@dataclass(frozen=True)
class NumberedPaths(Sequence[Path]):
    """``folder/0000.png, 0001.png, ...`` without a list of paths: frame ``i`` is named
    ``f"{i:0{digits}d}{suffix}"``."""

    folder: Path
    frames: int
    digits: int
    suffix: str

    @classmethod
    def of(cls, paths: Sequence[Path]) -> NumberedPaths | None:
        """The pattern of ``paths`` (frame order) when every name is its frame number at one width and suffix."""
        if not paths:
            return None
        pattern = cls(paths[0].parent, len(paths), len(paths[0].stem), paths[0].suffix)
        return pattern if all(path == pattern[i] for i, path in enumerate(paths)) else None

    def __len__(self) -> int:
        return self.frames

    @overload
    def __getitem__(self, index: int) -> Path: ...

    @overload
    def __getitem__(self, index: slice) -> list[Path]: ...

    def __getitem__(self, index: int | slice) -> Path | list[Path]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.frames))]
        if not -self.frames <= index < self.frames:
            raise IndexError(f"frame {index} of {self.frames}")
        return self.folder / f"{index % self.frames:0{self.digits}d}{self.suffix}"


class VideoFrames:
    """One video file per view; the frame count comes from the container header (no decoding)."""

    __slots__ = ("folder", "name", "fps", "_count")  # a dataset of 53K objects holds 850K of them

    def __init__(self, path: Path) -> None:
        import av

        self.folder, self.name = path.parent, path.name
        try:
            with av.open(str(path)) as container:
                stream = self._stream(container)
                self.fps = Fraction(stream.average_rate or stream.guessed_rate or 0)
                self._count = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        except av.FFmpegError as error:
            raise VividZooError(f"{self._where()}: not a readable video ({error})") from None
        if not self.fps:
            raise VividZooError(f"{self._where()}: the video has no frame rate")

    @classmethod
    def recorded(cls, folder: Path, name: str, count: int, fps: Fraction) -> VideoFrames:
        """``folder/name`` as the dataset manifest recorded it: nothing is opened, no path is built yet."""
        video = cls.__new__(cls)
        video.folder, video.name, video._count, video.fps = folder, name, count, fps
        return video

    @property
    def path(self) -> Path:
        return self.folder / self.name

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
        try:
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
        except av.FFmpegError as error:
            raise VividZooError(f"video {self._where()} stops decoding ({error})") from None
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
        return str(Path(self.folder.name, self.name))


def on_white(image: Image.Image) -> Image.Image:
    """The RGB image seen on a white background (renders are RGBA with a transparent background)."""
    if image.mode == "RGB":  # an opaque RGB image is its own composite on white
        return image
    image = image.convert("RGBA")
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, image).convert("RGB")


def prepare_image(image: Image.Image, size: int) -> torch.Tensor:
    """``(3, size, size)`` in [-1, 1]: transparency on white, shorter side resized, centre-cropped."""
    return prepare_images([image], size)[0]


def prepare_images(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """:func:`prepare_image` of each image, ``(n, 3, size, size)``, in channels-last memory (no transposing copy:
    the convolutions that take it run faster in that layout on CPUs and in half precision on GPUs)."""
    pixels = np.stack([np.asarray(square(on_white(image), size)) for image in images])  # (n, size, size, 3) uint8
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0


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

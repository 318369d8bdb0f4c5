"""The annotated output: an MP4 (or, for a single image, a picture), written under a hidden
temporary name, checked, then renamed into place.

OpenCV's VideoWriter reports no write errors: on a full disk it goes on "writing" and leaves a
file without its index (`moov atom not found`). So the finished file is opened again and its
frame count compared with the frames written; a file at `path` is always a complete video, and a
broken one is removed (freeing the space for the other outputs) with a WriteError.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from engines.common.letterbox import letterbox
from engines.errors import UserError, WriteError

__all__ = ["VideoSink", "ImageSink", "partial_video_path", "PARTIAL_VIDEO_PATTERN"]

PARTIAL_VIDEO_PATTERN = ".*.partial.mp4"


def partial_video_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def _frames_in(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()


class VideoSink:
    """write(image) per frame, close() once: the video appears at `path` only when complete. The
    video takes the first frame's size; a later frame of another size (an image folder of mixed
    sizes) is fitted into it, aspect kept, centred on grey, as a video writer drops it otherwise."""

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path = Path(path)
        self.fps = fps
        self._tmp = partial_video_path(self.path)
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None   # (w, h) of the video, from the first frame
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise UserError(f"cannot write video {self.path}")
            self._size = (w, h)
        if image.shape[1::-1] != self._size:
            image = letterbox(image, self._size, centred=True)[0]
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        if _frames_in(self._tmp) != self.frames:
            self._tmp.unlink(missing_ok=True)
            raise WriteError(f"cannot write {self.path}: {_why(self.path, 'the video writer failed')} "
                             f"(the unfinished video was removed)")
        os.replace(self._tmp, self.path)


class ImageSink:
    """The annotated picture of a one-image source (a one-frame MP4 is not what a photo's user
    wants): the last frame written, encoded by its file extension at close()."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._image: np.ndarray | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        self._image = image
        self.frames += 1

    def close(self) -> None:
        if self._image is None:
            return
        from engines.common.files import atomic_path

        ok, encoded = cv2.imencode(self.path.suffix, self._image)
        try:
            if not ok:
                raise OSError("the image encoder failed")
            with atomic_path(self.path) as tmp:
                tmp.write_bytes(encoded.tobytes())
        except OSError as exc:
            raise WriteError(f"cannot write {self.path}: {_why(self.path, exc.strerror or str(exc))}") from None


def _why(path: Path, otherwise: str) -> str:
    """A failed write's reason: a full disk (OpenCV's writers do not say so), else `otherwise`."""
    free = shutil.disk_usage(path.parent).free if path.parent.exists() else 1 << 30
    return "no space left on device" if free < 1 << 20 else otherwise

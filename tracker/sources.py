"""Frame sources: `--source` text -> an iterator of Frame(index, timestamp, BGR uint8 HxWx3).

Accepted: "webcam", "webcam:N" or an integer (camera N), a video file, an image folder or glob,
an rtsp:// / http(s):// URL, and "demo" (the clip bundled in tracker/assets/).

Files give every frame in order, timestamps from the frame rate. Live sources (cameras, URLs)
are read by `CaptureThread`, where the newest frame replaces an unread one so latency stays
flat; a dropped stream reopens with exponential backoff and a bounded number of tries.
Unreadable frames are skipped and counted in `skipped`. Every user mistake is a UserError.
"""

from __future__ import annotations

import glob
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NamedTuple
from urllib.parse import urlparse

import cv2
import numpy as np

from engines.errors import UserError

__all__ = ["Frame", "Source", "VideoSource", "ImageFolderSource", "LiveSource", "CaptureThread",
           "open_source", "DEMO_CLIP", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS"]

DEMO_CLIP = Path(__file__).resolve().parent / "assets" / "demo.mp4"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
OPEN_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 5.0
# A video decoder that keeps failing this many frames in a row has reached a broken end.
MAX_CONSECUTIVE_BAD_FRAMES = 25


class Frame(NamedTuple):
    index: int
    timestamp: float    # seconds: position in the file, or time.time() at capture for live sources
    image: np.ndarray   # BGR uint8 HxWx3


def _valid(image) -> bool:
    return (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
            and image.dtype == np.uint8 and image.shape[0] > 0 and image.shape[1] > 0)


class Source:
    """Base: iterate for frames; `live`, `name`, `fps`, `num_frames` (None if unknown), `skipped`."""

    live = False

    def __init__(self, name: str, fps: float, num_frames: int | None):
        self.name = name
        self.fps = fps
        self.num_frames = num_frames
        self.skipped = 0

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def interrupt(self) -> None:
        """Ask an iteration running on another thread to end after the current frame."""

    def close(self) -> None:
        """Release the device or file; only once no thread is iterating."""


class VideoSource(Source):
    """Every frame of a video file, in order; undecodable frames are skipped and counted.

    loop=True starts over at the end (a file standing in for a camera)."""

    def __init__(self, path: str | os.PathLike, loop: bool = False):
        self.path = Path(path)
        self._capture = _open_capture(str(self.path), f"cannot decode video {self.path}")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        super().__init__(self.path.stem, fps if 0 < fps < 1000 else 30.0, count if count > 0 else None)
        self.loop = loop

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            bad_in_a_row = 0
            while bad_in_a_row < MAX_CONSECUTIVE_BAD_FRAMES:
                ok, image = self._capture.read()
                if ok and _valid(image):
                    bad_in_a_row = 0
                    yield Frame(index, index / self.fps, image)
                    index += 1
                    continue
                # read() fails both at a corrupt frame and at the end; only the reported count
                # tells them apart, so failures before it are skipped frames
                position = int(self._capture.get(cv2.CAP_PROP_POS_FRAMES))
                if self.num_frames is None or position >= self.num_frames:
                    break
                self.skipped += 1
                bad_in_a_row += 1
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, position + 1)
            if not self.loop or index == 0:
                return
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def close(self) -> None:
        self._capture.release()


class ImageFolderSource(Source):
    """Images of a folder (sorted by name) or a glob; unreadable files are skipped and counted."""

    def __init__(self, paths: list[Path], name: str, fps: float = 30.0):
        super().__init__(name, fps, len(paths))
        self.paths = paths

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for path in self.paths:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if not _valid(image):
                self.skipped += 1
                continue
            yield Frame(index, index / self.fps, image)
            index += 1


class LiveSource(Source):
    """A camera or network stream. Frames are read as they come; when the stream drops it is
    reopened after 0.5, 1, 2, ... s, giving up after `max_reconnects` tries without a frame."""

    live = True

    def __init__(self, target: int | str, name: str, max_reconnects: int = 5, backoff_s: float = 0.5,
                 opener: Callable[[], cv2.VideoCapture] | None = None):
        self.target = target
        self._opener = opener or (lambda: _open_live(target))
        self._capture = self._opener()
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        super().__init__(name, fps if 0 < fps < 1000 else 30.0, None)
        self.max_reconnects = max_reconnects
        self.backoff_s = backoff_s
        self.reconnects = 0
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        failures = 0      # reopen attempts since the last good frame
        while not self._closed.is_set():
            ok, image = self._capture.read()
            if ok and _valid(image):
                failures = 0
                yield Frame(index, time.time(), image)
                index += 1
                continue
            if ok:
                self.skipped += 1
                continue
            self._capture.release()
            if failures >= self.max_reconnects or self._closed.wait(self.backoff_s * 2 ** failures):
                return
            failures += 1
            try:
                self._capture = self._opener()
                self.reconnects += 1
            except UserError:
                self._capture = cv2.VideoCapture()  # never opened: its read() fails, the next try follows

    def interrupt(self) -> None:
        self._closed.set()

    def close(self) -> None:
        self._closed.set()
        self._capture.release()


@dataclass
class CaptureThread:
    """Reads a source on its own thread into a small buffer.

    Files: a bounded queue, the reader waits for the consumer (every frame, in order).
    Live: a single slot, a new frame replaces an unread one (newest wins, `dropped` counts them).
    `get()` returns (Frame, capture monotonic time) or None at the end of the source.
    """

    source: Source
    buffer: int = 4
    dropped: int = 0
    error: BaseException | None = None
    _items: list = field(default_factory=list)
    _done: bool = False

    def __post_init__(self):
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.source.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self.source:
                item = (frame, time.monotonic())
                with self._cond:
                    if self.source.live:
                        self.dropped += len(self._items)
                        self._items[:] = [item]
                    else:
                        while len(self._items) >= self.buffer and not self._stop.is_set():
                            self._cond.wait(0.1)
                        self._items.append(item)
                    self._cond.notify_all()
                if self._stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer thread, which reports it
            self.error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def get(self, timeout: float | None = None):
        """The next (Frame, capture_time); None at the end; raises what the reader raised."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items and not self._done:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no frame from {self.source.name} in {timeout} s")
                self._cond.wait(remaining if remaining is not None else 0.5)
            if self._items:
                item = self._items.pop(0)
                self._cond.notify_all()
                return item
        if self.error is not None:
            raise self.error
        return None

    def stop(self) -> None:
        """End the reader and release the source (after the reader left it: releasing a
        capture in the middle of a read crashes the decoder)."""
        self._stop.set()
        self.source.interrupt()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=READ_TIMEOUT_S + 1.0)
        if not self._thread.is_alive():
            self.source.close()


def _open_capture(target: str | int, error: str, params: list[int] | None = None) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(target, cv2.CAP_ANY, params or [])
    if not capture.isOpened():
        capture.release()
        raise UserError(error)
    return capture


def _check_reachable(url: str, timeout: float = OPEN_TIMEOUT_S) -> None:
    """Fail fast on a host that does not answer, before the decoder gets a chance to hang."""
    parts = urlparse(url)
    default_port = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "http": 80, "https": 443}[parts.scheme]
    try:
        with socket.create_connection((parts.hostname or "", parts.port or default_port), timeout=timeout):
            pass
    except OSError as exc:
        raise UserError(f"cannot reach stream {url}: {exc.strerror or exc}") from None


def _open_live(target: int | str) -> cv2.VideoCapture:
    if isinstance(target, int):
        # OpenCV logs one warning per camera backend it tries; the UserError says it in one line
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            return _open_capture(target, f"no camera {target} (cannot open webcam:{target})")
        finally:
            cv2.utils.logging.setLogLevel(previous)
    _check_reachable(target)
    timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(OPEN_TIMEOUT_S * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(READ_TIMEOUT_S * 1000)]
    return _open_capture(target, f"cannot open stream {target}", timeouts)


def _camera_index(spec: str) -> int | None:
    if spec.isdigit():
        return int(spec)
    if spec == "webcam":
        return 0
    if spec.startswith("webcam:"):
        number = spec.split(":", 1)[1]
        if not number.isdigit():
            raise UserError(f"bad camera {spec!r}: use webcam:N with N a number")
        return int(number)
    return None


def open_source(spec: str | int | os.PathLike, loop: bool = False, live: bool = False) -> Source:
    """The Source named by `spec` (see module docstring). loop: restart a video at its end;
    live: treat a video file as a camera (with loop, a stand-in camera for tests and demos)."""
    text = str(spec)
    camera = _camera_index(text)
    if camera is not None:
        return LiveSource(camera, f"webcam{camera}")
    if urlparse(text).scheme in STREAM_SCHEMES:
        name = (Path(urlparse(text).path).stem or urlparse(text).hostname or "stream")
        return LiveSource(text, name)
    if text == "demo":
        if not DEMO_CLIP.is_file():
            raise UserError(f"the bundled demo clip is missing: {DEMO_CLIP}")
        text = str(DEMO_CLIP)
    path = Path(text).expanduser()
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {path}")
        return ImageFolderSource(images, path.name)
    if glob.has_magic(text):
        images = sorted(Path(p) for p in glob.glob(os.path.expanduser(text))
                        if Path(p).suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise UserError(f"no images match {text}")
        return ImageFolderSource(images, images[0].parent.name)
    if not path.exists():
        raise UserError(f"source not found: {text} (expected webcam[:N], a video, an image folder, "
                        f"a glob, a URL or 'demo')")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageFolderSource([path], path.stem)
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise UserError(f"unsupported source format {path.suffix or '(no extension)'}: {path}")
    if live:
        return LiveSource(str(path), path.stem, opener=lambda: _open_capture(str(path), f"cannot decode {path}"),
                          max_reconnects=0) if not loop else _LoopingCamera(path)
    return VideoSource(path, loop=loop)


class _LoopingCamera(LiveSource):
    """A video file played in a loop at its own frame rate, read like a camera."""

    def __init__(self, path: Path):
        self._video = VideoSource(path, loop=True)
        self._capture = self._video._capture
        Source.__init__(self, path.stem, self._video.fps, None)
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[Frame]:
        period = 1.0 / self.fps
        next_time = time.monotonic()
        for frame in self._video:
            if self._closed.is_set():
                return
            # a camera delivers at its rate no matter how slowly frames are consumed
            next_time += period
            delay = next_time - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            yield Frame(frame.index, time.time(), frame.image)

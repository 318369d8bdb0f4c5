"""Frame sources: `--source` text -> an iterator of Frame(index, timestamp, BGR uint8 HxWx3).

Accepted: "webcam", "webcam:N" or an integer (camera N), a video file, an image folder or glob,
an rtsp:// / http(s):// URL, and "demo" (the clip bundled in tracker/assets/).

Files (and finite videos at an http(s) URL, which report their length) give every decodable
frame in order, numbered as the file numbers them: a damaged stretch of a video or an unreadable
image keeps its numbers unused, is said in one line on stderr and counted in `lost`. Timestamps
are the frame number over the frame rate. Their first frame is read when they are opened, so a
file or folder without a single decodable frame is a UserError before any work, not an empty
run. An image folder names each frame's file (`Source.file_name`).

Live sources (cameras, rtsp, http without a length) are read by `CaptureThread`, where the
newest frame replaces an unread one so latency stays flat, and numbered in the order they are
handed on (a frame dropped as stale gets no number); their timestamps come from a monotonic
clock, and a dropped stream reopens with exponential backoff and a bounded number of tries,
each said on stderr. Every user mistake is a UserError. FFmpeg's own messages are silenced (set
OPENCV_FFMPEG_LOGLEVEL to see them).
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NamedTuple
from urllib.parse import urlparse

# FFmpeg prints decoder complaints (about every damaged frame) from C on fd 2, and OpenCV warns
# about stream timeouts; the messages that matter are ours. OpenCV reads the FFmpeg level once,
# at the first FFmpeg use in the process, so it is set before cv2 is imported here. Levels the
# user set (OPENCV_FFMPEG_LOGLEVEL, OPENCV_FFMPEG_DEBUG, OPENCV_LOG_LEVEL) are kept.
if "OPENCV_FFMPEG_LOGLEVEL" not in os.environ and "OPENCV_FFMPEG_DEBUG" not in os.environ:
    os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "-8"  # AV_LOG_QUIET

import cv2  # noqa: E402

if "OPENCV_LOG_LEVEL" not in os.environ:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
import numpy as np  # noqa: E402

from engines.common.frames import validate_frame  # noqa: E402
from engines.errors import UserError  # noqa: E402

__all__ = ["Frame", "Source", "VideoSource", "ImageFolderSource", "LiveSource", "CaptureThread",
           "SteadyClock", "open_source", "DEMO_CLIP", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS"]

DEMO_CLIP = Path(__file__).resolve().parent / "assets" / "demo.mp4"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
OPEN_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 5.0
STREAM_TIMEOUTS = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(OPEN_TIMEOUT_S * 1000),
                   cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(READ_TIMEOUT_S * 1000)]
# Failed reads in a row that end a video whose length is unknown (a failed read costs ~10 us).
MAX_FAILED_READS_UNKNOWN_LENGTH = 3000
# HTTP answers that are playlists or endless multipart streams even when they carry a length
LIVE_CONTENT_TYPES = ("mpegurl", "dash+xml", "multipart/")


class Frame(NamedTuple):
    index: int
    timestamp: float    # seconds: index / fps for files, the capture time for live sources (SteadyClock)
    image: np.ndarray   # BGR uint8 HxWx3


def say(message: str) -> None:
    """One line for the user on stderr (stdout may carry --jsonl -), from the capture thread:
    tqdm.write keeps it apart from a progress bar that tqdm draws."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


class SteadyClock:
    """Epoch seconds that never go back: the wall clock read once, then advanced by the monotonic
    clock, so a wall-clock step (NTP, a user changing the time) cannot reorder live frames."""

    def __init__(self, wall: Callable[[], float] | None = None, monotonic: Callable[[], float] | None = None):
        self._monotonic = monotonic or time.monotonic
        self._wall = (wall or time.time)()
        self._start = self._monotonic()

    def __call__(self) -> float:
        return self._wall + (self._monotonic() - self._start)


def _usable(image) -> bool:
    """A frame the models accept (engines' rule); a source counts any other as lost."""
    try:
        validate_frame(image)
    except UserError:
        return False
    return True


class Source:
    """Base: iterate for frames; `live`, `name`, `fps`, `num_frames` (None if unknown), and `lost`:
    frames the source has but could not deliver (undecodable video frames, unreadable images)."""

    live = False

    def __init__(self, name: str, fps: float, num_frames: int | None):
        self.name = name
        self.fps = fps
        self.num_frames = num_frames
        self.lost = 0

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def file_name(self, index: int) -> str | None:
        """The file frame `index` comes from, relative to the source's folder: None for a source
        without files (a video, a camera), "" for a number of a folder that no file has."""
        return None

    def interrupt(self) -> None:
        """Ask an iteration running on another thread to end after the current frame."""

    def close(self) -> None:
        """Release the device or file; only once no thread is iterating."""


def _with_first_frame(frames: Iterator[Frame], error: str) -> Iterator[Frame]:
    """`frames` with its first frame read now: a source without a single frame is a UserError
    (`error`) when it is opened, before any model loads or output exists, not an empty run."""
    first = next(frames, None)
    if first is None:
        raise UserError(error)
    return itertools.chain([first], frames)


class VideoSource(Source):
    """Every decodable frame of a video file (or a finite video at a URL), in order.

    A frame's number comes from the container's timestamps: a step of k frame periods since the
    previous frame means k - 1 frames could not be decoded, and they are counted in `lost`
    (without timestamps, each failed read counts one). Reading goes on past a damaged stretch
    and stops when more reads failed in a row than the container has frames left (FFmpeg
    consumes at least one packet per failed read, and at the end every read fails at once) or
    for longer than READ_TIMEOUT_S (a stalled download); frames the container announced but
    never gave are lost too. loop=True starts over at the end. A video that gives no frame at
    all is a UserError when opened: at a URL, most often an MP4 with its index (moov atom) at the
    end on a server that ignores Range requests, which FFmpeg cannot seek back in.
    """

    def __init__(self, path: str | os.PathLike, loop: bool = False, name: str | None = None,
                 params: list[int] | None = None):
        self.target = str(path)
        hint = ""
        if urlparse(self.target).scheme in ("http", "https"):
            hint = " (the server must support Range requests, or the MP4 be fast-start: its moov atom first)"
        self._capture = _open_capture(self.target, f"cannot decode video {self.target}{hint}", params)
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        super().__init__(name or Path(path).stem, fps if 0 < fps < 1000 else 30.0, count if count > 0 else None)
        self.loop = loop
        try:
            self._frames = _with_first_frame(self._passes(), f"no frame of video {self.target} could be "
                                                             f"decoded{hint}")
        except UserError:
            self._capture.release()
            raise

    def __iter__(self) -> Iterator[Frame]:
        return self._frames

    def _passes(self) -> Iterator[Frame]:
        first = 0
        while True:
            after = yield from self._read_once(first)
            if not self.loop or after == first:
                return
            first = after
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def _read_once(self, first: int):
        """One pass over the file, its frames numbered from `first`; returns the number after its
        last, or `first` without a word when it gave no frame (the caller decides what that means)."""
        last = -1                 # number in the file of the last frame given
        last_ms = None            # its container timestamp
        failures = 0              # reads failed since then
        failing_since = 0.0
        while True:
            ok, image = self._capture.read()
            if not (ok and _usable(image)):
                failing_since = failing_since if failures else time.monotonic()
                failures += 1
                # a stalled network read fails once per READ_TIMEOUT_S: no frame for that long ends it too
                if (failures > self._failed_reads_allowed(last)
                        or time.monotonic() - failing_since > READ_TIMEOUT_S):
                    break
                continue
            ms = self._capture.get(cv2.CAP_PROP_POS_MSEC)
            number = self._number(last, last_ms, ms, failures)
            if number > last + 1:
                self._report_lost(first + last + 1, first + number - 1)
            last, last_ms, failures = number, ms, 0
            yield Frame(first + number, (first + number) / self.fps, image)
        if last < 0:
            return first
        end = last + 1
        if self.num_frames is not None and self.num_frames > end:
            # where is unknown: some demuxers (AVI) renumber the frames after a damaged stretch
            missing = self.num_frames - end
            self.lost += missing
            say(f"{self.name}: {missing} of the {self.num_frames} frames the file announces could not be decoded")
            end = self.num_frames
        return first + end

    def _failed_reads_allowed(self, last: int) -> int:
        if self.num_frames is None:
            return MAX_FAILED_READS_UNKNOWN_LENGTH
        return self.num_frames - (last + 1)

    def _number(self, last: int, last_ms: float | None, ms: float, failures: int) -> int:
        """The number in the file of a frame read after `failures` failed reads."""
        if last_ms is None:        # the first frame: timestamps start at 0 unless it was read at once
            number = 0 if failures == 0 or not ms > 0 else round(ms * self.fps / 1000)
        elif ms > last_ms:         # NaN or a missing timestamp (0) fails this test
            number = last + max(1, round((ms - last_ms) * self.fps / 1000))
        else:
            number = last + 1 + failures
        if self.num_frames is not None and number >= self.num_frames:  # a timestamp past the end is bogus
            number = last + 1 + failures
        return number

    def _report_lost(self, first: int, last: int) -> None:
        count = last - first + 1
        self.lost += count
        say(f"{self.name}: {count} frame{'s' * (count > 1)} could not be decoded "
            f"(frame {first}" + (f" to {last})" if count > 1 else ")"))

    def close(self) -> None:
        self._capture.release()


class ImageFolderSource(Source):
    """Images of a folder or a glob, one frame each, numbered as the files are.

    Where the names differ only by a number (0006.jpg, frame_12.png), no two the same, the
    files go in that numeric order and frame k is the file numbered first + k: 000001.jpg of a
    MOTChallenge folder and 000000.jpg of a PoseTrack one are both frame 0, and a missing or
    unreadable file leaves its number unused. Otherwise the files go in name order, numbered by
    position. Unreadable files are said on stderr and counted in `lost`; none readable is a
    UserError when opened. `file_name(k)` is frame k's file relative to the folder (for a glob,
    the deepest folder holding every match).
    """

    def __init__(self, paths: list[Path], name: str, fps: float = 30.0):
        self.paths, self.numbers = _number_images(paths)
        super().__init__(name, fps, len(self.paths))
        root = Path(os.path.commonpath([p.parent for p in self.paths]))
        self._files = {number: path.relative_to(root).as_posix() for path, number in zip(self.paths, self.numbers)}
        error = (f"cannot read image {self.paths[0]}: damaged, empty or not an image" if len(self.paths) == 1 else
                 f"none of the {len(self.paths)} images in {root} can be read: damaged, empty or not images")
        self._frames = _with_first_frame(self._read(), error)

    def __iter__(self) -> Iterator[Frame]:
        return self._frames

    def file_name(self, index: int) -> str:
        return self._files.get(index, "")

    def _read(self) -> Iterator[Frame]:
        # unreadable files are said once a readable one is found: a folder with none is one error line
        unsaid, found = [], False
        for path, number in zip(self.paths, self.numbers):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if _usable(image):
                found = True
                for line in unsaid:
                    say(line)
                unsaid.clear()
                yield Frame(number, number / self.fps, image)
                continue
            self.lost += 1
            line = f"{self.name}: unreadable image {path} skipped (frame {number})"
            if found:
                say(line)
            else:
                unsaid.append(line)


def _number_images(paths: list[Path]) -> tuple[list[Path], list[int]]:
    """(paths in frame order, their frame numbers): see ImageFolderSource."""
    parts = [re.fullmatch(r"(.*?)(\d+)(\D*)", p.stem) for p in paths]
    if all(parts) and len({(m[1], m[3]) for m in parts}) == 1:   # one name but for its number
        numbers = [int(m[2]) for m in parts]
        if len(set(numbers)) == len(numbers):
            order = sorted(range(len(paths)), key=numbers.__getitem__)
            base = numbers[order[0]]
            return [paths[i] for i in order], [numbers[i] - base for i in order]
    ordered = sorted(paths)
    return ordered, list(range(len(ordered)))


class LiveSource(Source):
    """A camera or network stream. Frames are read as they come, stamped by a SteadyClock; when
    the stream drops it is reopened after 0.5, 1, 2, ... s, giving up after `max_reconnects`
    tries without a frame. Each try is said on stderr."""

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
        clock = SteadyClock()
        index = 0
        failures = 0      # reopen attempts since the last good frame
        while not self._closed.is_set():
            ok, image = self._capture.read()
            if ok and _usable(image):
                failures = 0
                yield Frame(index, clock(), image)
                index += 1
                continue
            if ok:
                self.lost += 1
                continue
            self._capture.release()
            if failures >= self.max_reconnects:
                if self.max_reconnects:
                    say(f"{self.name}: stream lost, {self.max_reconnects} reconnection tries failed")
                return
            delay = self.backoff_s * 2 ** failures
            failures += 1
            say(f"{self.name}: stream dropped, reconnecting in {delay:g} s (try {failures} of {self.max_reconnects})")
            if self._closed.wait(delay):
                return
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

    Files: a bounded queue, the reader waits for the consumer (every frame, in order, numbered
    as the file numbers them).
    Live: a single slot, a new frame replaces an unread one (newest wins, `dropped` counts them),
    and the frames handed on are numbered 0, 1, 2...: a stale frame dropped here is no frame of
    the run, so every output of a live run holds the same frames with no gaps.
    `get()` returns (Frame, capture monotonic time) or None at the end of the source.
    """

    source: Source
    buffer: int = 4
    dropped: int = 0
    error: BaseException | None = None
    _items: list = field(default_factory=list)
    _done: bool = False
    _handed_on: int = 0

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
                frame, captured = self._items.pop(0)
                self._cond.notify_all()
                if self.source.live:
                    frame = frame._replace(index=self._handed_on)
                    self._handed_on += 1
                return frame, captured
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
    return _open_capture(target, f"cannot open stream {target}", STREAM_TIMEOUTS)


def _http_length(url: str) -> int | None:
    """The length an http(s) server gives for `url`: None for a live stream (no Content-Length,
    a playlist or a multipart answer) and where the server would not say."""
    try:
        with urllib.request.urlopen(url, timeout=OPEN_TIMEOUT_S) as answer:  # headers only
            kind = answer.headers.get_content_type()
            length = answer.headers.get("Content-Length", "")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if not length.isdigit() or any(live in kind for live in LIVE_CONTENT_TYPES):
        return None
    return int(length)


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
    scheme = urlparse(text).scheme
    if scheme in STREAM_SCHEMES:
        name = (Path(urlparse(text).path).stem or urlparse(text).hostname or "stream")
        if scheme in ("http", "https"):
            _check_reachable(text)
            if _http_length(text) is not None:  # a video file on a web server: read it like a file
                return VideoSource(text, name=name, params=STREAM_TIMEOUTS)
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
        clock = SteadyClock()
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
            self.lost = self._video.lost
            yield Frame(frame.index, clock(), frame.image)

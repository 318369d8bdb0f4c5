"""Videos for tests. `cut_video` re-encodes a clip's first frames. A fed video is a named pipe
(FIFO) under a video's name, which a batch opens and decodes like the file, but which gives its
bytes only as the test writes them. So the test knows the moment a worker has started the video
(its own open for writing returns), which process reads it (the one holding the pipe open), and
can keep the video unfinished for as long as it likes: a worker is killed mid-video at a moment
the test controls, without sleeps or timing."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import time
from pathlib import Path

import cv2

__all__ = ["cut_video", "FedVideo", "reader_of", "wait_until"]


def cut_video(source: Path, path: Path, frames: int, fourcc: str = "mp4v") -> Path:
    """The first `frames` frames of `source` re-encoded at `path` (MJPG: an AVI FFmpeg reads from
    a pipe, its index not needed)."""
    reader, writer = cv2.VideoCapture(str(source)), None
    for _ in range(frames):
        ok, image = reader.read()
        assert ok
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, image.shape[1::-1])
        writer.write(image)
    writer.release()
    reader.release()
    return path


def wait_until(condition, running, timeout: float = 180.0) -> None:
    """Wait for `condition()` while `running()` (the batch goes on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert running(), "the batch ended first"
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.02)


def reader_of(path: Path, timeout: float = 60.0) -> int:
    """The pid of the process (not this one) that holds `path` open: once a writer has opened a
    pipe, the reader's open() returns, and its descriptor appears soon after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid() and str(path) in _open_files(entry):
                return int(entry.name)
        time.sleep(0.02)
    raise AssertionError(f"nobody holds {path} open")


def _open_files(process: Path) -> set[str]:
    files = set()
    try:
        descriptors = list((process / "fd").iterdir())
    except OSError:
        return files   # gone meanwhile, or not ours to look at
    for fd in descriptors:
        try:
            files.add(os.readlink(fd))
        except OSError:
            pass       # closed meanwhile
    return files


class FedVideo:
    """A pipe at `path` that plays the video `data` as the test feeds it."""

    def __init__(self, path: Path, data: bytes):
        self.path, self.data = path, data
        os.mkfifo(path)
        self._fd: int | None = None
        self.reader: int | None = None   # the pid of the process that opened it last

    def wait_for_reader(self, running, timeout: float = 180.0) -> int:
        """Wait until a process opens the video (`running()` false: the batch ended, a failure);
        the reader's pid."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)   # fails (ENXIO) while nobody reads
                break
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
            assert running(), f"the batch ended before it opened {self.path.name}"
            assert time.monotonic() < deadline, f"nobody opened {self.path.name}"
            time.sleep(0.02)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        self._fd = fd
        self.reader = reader_of(self.path)
        return self.reader

    def kill_reader(self) -> None:
        """SIGKILL the process reading the video, and wait until it is gone (until then the pipe
        is still open at its end)."""
        os.kill(self.reader, signal.SIGKILL)
        self.close()
        self.wait_for_reader_gone()

    def wait_for_reader_gone(self, timeout: float = 180.0) -> None:
        """Wait until the last reader no longer holds the video open (it ended, or was killed)."""
        wait_until(lambda: str(self.path) not in _open_files(Path(f"/proc/{self.reader}")), lambda: True, timeout)

    def feed(self, fraction: float = 1.0) -> None:
        """Write the video's first `fraction` (a reader decodes what it gets, then waits for
        more); all of it ends the video."""
        end = int(len(self.data) * fraction)
        view = memoryview(self.data)[:end]
        while view:
            view = view[os.write(self._fd, view):]
        if fraction >= 1.0:
            self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

"""A one-line progress report on stderr: frames, FPS and, when the length is known, ETA."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """`update(done)` redraws at most every `interval` s; `close()` ends the line."""

    def __init__(self, total: int | None, label: str = "", interval: float = 0.5, stream=None):
        self.total = total
        self.label = label
        self.interval = interval
        self.stream = stream or sys.stderr
        self._start = time.monotonic()
        self._last = 0.0
        self._drawn = False

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self._last < self.interval and done != self.total:
            return
        self._last = now
        fps = done / max(now - self._start, 1e-9)
        text = f"{self.label} {done}" + (f"/{self.total}" if self.total else "") + f" frames {fps:.1f} FPS"
        if self.total and fps > 0:
            text += f" ETA {max(self.total - done, 0) / fps:.0f}s"
        self.stream.write("\r" + text + " " * 4)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()

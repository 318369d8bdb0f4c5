"""Ctrl+C during a run: stop at the next frame and finish every output, instead of a
KeyboardInterrupt landing anywhere (say, between two files being closed).

The first Ctrl+C calls the registered stop function and is remembered (`pressed`: the CLI
exits 130); a second one raises KeyboardInterrupt as usual, for a user who will not wait.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Callable

__all__ = ["StopOnCtrlC"]


class StopOnCtrlC:
    """`with StopOnCtrlC() as ctrl_c: ctrl_c.on_press(pipeline.stop); ...`; then `ctrl_c.pressed`."""

    def __init__(self):
        self.pressed = False
        self._stop: Callable[[], None] | None = None
        self._previous = None

    def on_press(self, stop: Callable[[], None]) -> None:
        """Call `stop` on Ctrl+C (at once if it was pressed already); replaces the previous one."""
        self._stop = stop
        if self.pressed:
            stop()

    def _handle(self, signum, frame) -> None:
        self.pressed = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\nstopping: finishing the outputs (Ctrl+C again to abort)", file=sys.stderr, flush=True)
        if self._stop is not None:
            self._stop()

    def __enter__(self) -> "StopOnCtrlC":
        if threading.current_thread() is threading.main_thread():  # only there can signals be caught
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

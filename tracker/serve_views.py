"""The latest frames of each stream, handed from the pipeline to the `--serve` viewers.

The pipeline's output thread publishes each processed frame into its stream's `LiveView`:
references kept (the tracks of the last RECENT_FRAMES frames, the newest picture only) and a
notify, nothing more, so publishing costs the same with no viewer, many, or stalled ones.
Viewers (the HTTP handler threads) wait for frames newer than the last they took and do the work
themselves, once per frame for all of them: the JPEG and the JSONL record are made on first
request and cached. A viewer that falls behind gets the newest picture (MJPEG) or the frames
still kept (SSE) and skips the rest.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import cv2
import numpy as np

from tracker.export.writers import frame_record
from tracker.tracking import TrackBatch

__all__ = ["LiveView", "Published", "Picture", "JPEG_QUALITY", "RECENT_FRAMES"]

JPEG_QUALITY = 80
# frames a view keeps for viewers that take every one (SSE): a few seconds of jitter at 30 FPS
RECENT_FRAMES = 64
# frames over which the view's FPS is measured
FPS_WINDOW = 30


@dataclass(frozen=True)
class Published:
    """One processed frame as viewers see it."""

    seq: int                    # 1, 2, ... in the order the view received them
    frame_index: int
    timestamp: float | None
    file_name: str | None
    tracks: TrackBatch
    fps: float                  # frames published per second lately
    latency_ms: float           # capture to output, smoothed (the pipeline's "latency")

    @cached_property
    def record(self) -> dict:
        """The frame's JSONL line (the same fields as `--jsonl`)."""
        return frame_record(self.frame_index, self.timestamp, self.tracks, self.file_name)


@dataclass(frozen=True)
class Picture:
    """A frame's annotated picture (BGR), as the saved video shows it."""

    seq: int                    # its frame's Published.seq
    image: np.ndarray

    @cached_property
    def jpeg(self) -> bytes:
        return cv2.imencode(".jpg", self.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()


class LiveView:
    """One stream's recent frames: publish() from the pipeline, newer() from viewer threads."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic, keep: int = RECENT_FRAMES):
        self.name = name
        self._clock = clock
        self._recent: deque[Published] = deque(maxlen=keep)
        self._times: deque[float] = deque(maxlen=FPS_WINDOW)
        self._picture: Picture | None = None
        self._changed = threading.Condition()
        self._closed = False

    def publish(self, frame_index: int, timestamp: float | None, file_name: str | None, tracks: TrackBatch,
                image: np.ndarray | None, latency_ms: float) -> None:
        self._times.append(self._clock())
        span = self._times[-1] - self._times[0]
        fps = (len(self._times) - 1) / span if span > 0 else 0.0
        with self._changed:
            seq = self._recent[-1].seq + 1 if self._recent else 1
            self._recent.append(Published(seq, frame_index, timestamp, file_name, tracks, fps, latency_ms))
            self._picture = Picture(seq, image) if image is not None else None
            self._changed.notify_all()

    def latest(self) -> Published | None:
        with self._changed:
            return self._recent[-1] if self._recent else None

    def picture(self) -> Picture | None:
        """The newest frame's picture (None before the first or without a renderer)."""
        with self._changed:
            return self._picture

    def newer(self, seq: int, timeout: float) -> list[Published] | None:
        """The kept frames after `seq` (oldest first), waiting up to `timeout` seconds for one:
        [] when none came, None once the view is closed (the run ended) and all were taken."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed or (self._recent and self._recent[-1].seq > seq), timeout)
            items = [item for item in self._recent if item.seq > seq]
            return None if self._closed and not items else items

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

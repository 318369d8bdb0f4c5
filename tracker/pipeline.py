"""The real-time pipeline: capture threads -> detection, pose and tracking -> output thread.

One `Stream` per source, each with its own PoseTracker, sinks and renderer. The inference loop
takes frames from the streams in turn; the detector runs every `det_interval` frames and in
between the boxes come from the keypoints estimated in the previous frame. All people of a frame
go to the pose network as one batch. Results pass through a bounded queue to the output thread,
which draws, writes the video and the exporters, and shows the window. End of input, Ctrl+C or
q/Esc in the window close every output, so no file is left truncated.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from engines.errors import UserError
from tracker.render import Renderer
from tracker.sources import CaptureThread, Frame, Source
from tracker.tracking import PoseTracker, TrackBatch, TrackerConfig

__all__ = ["Stream", "Pipeline", "PipelineStats", "VideoSink", "propagate_boxes", "new_tracker", "STAGES"]

STAGES = ("detect", "pose", "track", "render")
# keypoints at or above this score define a propagated box
PROPAGATE_JOINT_SCORE = 0.3
PROPAGATE_PADDING = 0.1


def propagate_boxes(boxes: np.ndarray, keypoints: np.ndarray, frame_w: int, frame_h: int) -> np.ndarray:
    """Next-frame boxes (N,5) from this frame's people: the extent of the confident keypoints,
    padded (the box itself where fewer than 3 joints are confident), clamped to the frame.

    Built from the pose estimates rather than the reported tracks so that tentative tracks,
    which the tracker does not report yet, keep getting measurements and can be confirmed."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 5).copy()
    if len(boxes) == 0:
        return boxes
    confident = np.nan_to_num(keypoints[..., 2]) >= PROPAGATE_JOINT_SCORE
    enough = confident.sum(axis=1) >= 3
    if enough.any():
        xy = keypoints[enough, :, :2]
        mask = confident[enough]
        lo = np.where(mask[..., None], xy, np.inf).min(axis=1)
        hi = np.where(mask[..., None], xy, -np.inf).max(axis=1)
        pad = (hi - lo) * PROPAGATE_PADDING
        boxes[enough, :4] = np.concatenate([lo - pad, hi + pad], axis=1)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, frame_w - 1)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, frame_h - 1)
    size_ok = (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)
    return boxes[size_ok & np.isfinite(boxes).all(axis=1)]


class VideoSink:
    """An annotated MP4 written under a temporary name and renamed into place on close, so a
    file at `path` is always a complete video."""

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path = Path(path)
        self.fps = fps
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise UserError(f"cannot write video {self.path}")
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._tmp, self.path)


@dataclass
class Stream:
    """One source with its own tracker, exporters (TrackWriter), optional video and renderer."""

    source: Source
    tracker: PoseTracker
    writers: list = field(default_factory=list)
    video: VideoSink | None = None
    renderer: Renderer | None = None
    show: bool = False
    frames: int = 0
    track_ids: set = field(default_factory=set)
    last_people: tuple | None = None   # (boxes, keypoints) estimated in the previous frame
    latency_ms: dict = field(default_factory=dict)   # smoothed per-stage ms, "latency" end to end
    capture: CaptureThread | None = None
    samples: list | None = None   # when a list, every frame's raw stage ms are appended (bench)

    @property
    def name(self) -> str:
        return self.source.name

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        if self.video is not None:
            self.video.close()


@dataclass
class PipelineStats:
    frames: int
    seconds: float
    tracks: int
    skipped: int
    dropped: int
    interrupted: bool
    latency_ms: dict

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _smooth(store: dict, key: str, value: float, weight: float = 0.1) -> None:
    store[key] = value if key not in store else (1 - weight) * store[key] + weight * value


class Pipeline:
    """Runs streams to the end. estimator: .estimate(frame, boxes) -> (N,J,3); detector:
    .detect(frame) -> (N,5). on_frame(stream) is called in the output thread after each frame."""

    def __init__(self, estimator, detector, streams: list[Stream], det_interval: int = 1,
                 queue_size: int = 8, on_frame: Callable[[Stream], None] | None = None):
        if det_interval < 1:
            raise UserError(f"--det-interval must be 1 or more, got {det_interval}")
        self.estimator = estimator
        self.detector = detector
        self.streams = streams
        self.det_interval = det_interval
        self.on_frame = on_frame
        self._results: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._output_error: BaseException | None = None

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> PipelineStats:
        start = time.monotonic()
        interrupted = False
        for stream in self.streams:
            stream.capture = CaptureThread(stream.source, buffer=4)
        output = threading.Thread(target=self._output_loop, name="output", daemon=True)
        output.start()
        try:
            self._inference_loop()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            for stream in self.streams:
                stream.capture.stop()
            self._put(None)
            output.join()
            for stream in self.streams:
                stream.close()
        if self._output_error is not None:
            raise self._output_error
        return PipelineStats(
            frames=sum(s.frames for s in self.streams), seconds=time.monotonic() - start,
            tracks=sum(len(s.track_ids) for s in self.streams),
            skipped=sum(s.source.skipped for s in self.streams),
            dropped=sum(s.capture.dropped for s in self.streams),
            interrupted=interrupted or self._stop.is_set(),
            latency_ms={s.name: dict(s.latency_ms) for s in self.streams})

    def _put(self, item) -> None:
        # waits while the output thread is busy (bounded queue) but never past its death
        while True:
            try:
                self._results.put(item, timeout=0.2)
                return
            except queue.Full:
                if self._output_error is not None:
                    return

    def _inference_loop(self) -> None:
        active = list(self.streams)
        while active and not self._stop.is_set():
            for stream in list(active):
                item = stream.capture.get()
                if item is None:
                    active.remove(stream)
                    continue
                frame, captured = item
                self._put((stream, frame, captured, self._process(stream, frame)))
                if self._output_error is not None:
                    raise self._output_error

    def _process(self, stream: Stream, frame: Frame) -> tuple[TrackBatch, dict]:
        times = {}
        t0 = time.perf_counter()
        height, width = frame.image.shape[:2]
        if stream.frames % self.det_interval == 0 or stream.last_people is None:
            boxes = self.detector.detect(frame.image)
        else:
            boxes = propagate_boxes(*stream.last_people, width, height)
        t1 = time.perf_counter()
        keypoints = self.estimator.estimate(frame.image, boxes)
        t2 = time.perf_counter()
        tracks = stream.tracker.update(boxes, keypoints, frame.timestamp)
        t3 = time.perf_counter()
        times.update(detect=t1 - t0, pose=t2 - t1, track=t3 - t2)
        stream.last_people = (boxes, keypoints)
        stream.frames += 1
        return tracks, times

    def _output_loop(self) -> None:
        try:
            while True:
                item = self._results.get()
                if item is None:
                    return
                stream, frame, captured, (tracks, times) = item
                self._emit(stream, frame, captured, tracks, times)
        except BaseException as exc:  # re-raised by run() in the main thread
            self._output_error = exc
            self._stop.set()
            while True:  # release a producer waiting on the full queue
                try:
                    self._results.get_nowait()
                except queue.Empty:
                    break

    def _emit(self, stream: Stream, frame: Frame, captured: float, tracks: TrackBatch, times: dict) -> None:
        t0 = time.perf_counter()
        for writer in stream.writers:
            writer.write(frame.index, frame.timestamp, tracks)
        stream.track_ids.update(int(i) for i in tracks.ids)
        if stream.renderer is not None:
            overlay = {"FPS": 1000.0 / max(sum(stream.latency_ms.get(s, 0.0) for s in STAGES), 1e-3)}
            overlay.update({f"{s} ms": stream.latency_ms.get(s, 0.0) for s in STAGES})
            overlay["latency ms"] = stream.latency_ms.get("latency", 0.0)
            image = stream.renderer.draw(frame.image, tracks, overlay)
            if stream.video is not None:
                stream.video.write(image)
            if stream.show:
                cv2.imshow(f"tracker: {stream.name}", image)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    self._stop.set()
        times["render"] = time.perf_counter() - t0
        times["latency"] = time.monotonic() - captured
        for stage, seconds in times.items():
            _smooth(stream.latency_ms, stage, 1000.0 * seconds)
        if stream.samples is not None:
            stream.samples.append({stage: 1000.0 * seconds for stage, seconds in times.items()})
        if self.on_frame is not None:
            self.on_frame(stream)


def new_tracker(schema: str, fps: float) -> PoseTracker:
    """A PoseTracker for one stream, its frame period set from the source's frame rate."""
    return PoseTracker(TrackerConfig(schema=schema, frame_period=1.0 / fps))

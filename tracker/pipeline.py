"""The real-time pipeline: capture threads -> detection, pose and tracking -> output thread.

One `Stream` per source, each with its own PoseTracker, sinks and renderer. The inference loop
takes frames from the streams in turn; the detector runs every `det_interval` frames and in
between the boxes come from the tracker's prediction of where its people (tentative ones
included) are in the new frame. All people of a frame
go to the pose network as one batch. Results pass through a bounded queue to the output thread,
which draws, writes the video and the exporters, and shows the window. End of input, Ctrl+C or
q/Esc in the window close every output, so no file is left truncated.

Every output of a stream holds the same frames: the frames processed and, before each, the
frames of a file it follows that could not be decoded (a PoseTrack file keeps positions for
the evaluation, the video the source's timing: it shows the next picture in their place). A
live source numbers only the frames it hands on, so its stale frames leave no gap.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import cv2
import numpy as np

from engines.errors import UserError
from tracker.export.video import ImageSink, VideoSink
from tracker.render import Renderer
from tracker.sources import CaptureThread, Frame, Source
from tracker.tracking import PoseTracker, TrackBatch, TrackerConfig

__all__ = ["Stream", "Pipeline", "PipelineStats", "VideoSink", "propagate_boxes", "new_tracker", "STAGES"]

STAGES = ("detect", "pose", "track", "render")
# keypoints at or above this score define a propagated box
PROPAGATE_JOINT_SCORE = 0.3
PROPAGATE_PADDING = 0.1


def propagate_boxes(boxes: np.ndarray, keypoints: np.ndarray, frame_w: int, frame_h: int) -> np.ndarray:
    """Boxes (N,5) for a frame without detection from people's expected poses there (the
    tracker's `predicted_people`): the extent of the confident keypoints, padded (the box itself
    where fewer than 3 joints are confident), clamped to the frame."""
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


@dataclass
class Stream:
    """One source with its own tracker, exporters (TrackWriter), optional video and renderer."""

    source: Source
    tracker: PoseTracker
    writers: list = field(default_factory=list)
    video: VideoSink | ImageSink | None = None
    renderer: Renderer | None = None
    show: bool = False
    frames: int = 0
    track_ids: set = field(default_factory=set)
    latency_ms: dict = field(default_factory=dict)   # smoothed per-stage ms, "latency" end to end
    capture: CaptureThread | None = None
    frame_ms: dict = field(default_factory=dict)     # the latest frame's per-stage ms, unsmoothed
    next_index: int = 0                              # the frame number the outputs expect next

    @property
    def name(self) -> str:
        return self.source.name

    def close(self) -> None:
        """Finish every output, even when one fails (then re-raise the first failure). The video
        goes first: a broken one is removed, which frees space for the other files."""
        error = None
        for output in ([self.video] if self.video is not None else []) + self.writers:
            try:
                output.close()
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error


@dataclass
class PipelineStats:
    frames: int
    seconds: float
    tracks: int
    lost: int          # frames the sources could not deliver (Source.lost)
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
            close_error = None
            for stream in self.streams:
                try:
                    stream.close()
                except Exception as exc:
                    close_error = close_error or exc
        if self._output_error is not None:
            raise self._output_error
        if close_error is not None:
            raise close_error
        return PipelineStats(
            frames=sum(s.frames for s in self.streams), seconds=time.monotonic() - start,
            tracks=sum(len(s.track_ids) for s in self.streams),
            lost=sum(s.source.lost for s in self.streams),
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
        if stream.frames % self.det_interval == 0:
            boxes = self.detector.detect(frame.image)
        else:  # follow the tracker's people (tentative ones too) to where it predicts them now
            boxes = propagate_boxes(*stream.tracker.predicted_people(frame.timestamp), width, height)
        t1 = time.perf_counter()
        keypoints = self.estimator.estimate(frame.image, boxes)
        t2 = time.perf_counter()
        tracks = stream.tracker.update(boxes, keypoints, frame.timestamp, image=frame.image)
        t3 = time.perf_counter()
        times.update(detect=t1 - t0, pose=t2 - t1, track=t3 - t2)
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
        lost = range(stream.next_index, frame.index)
        stream.next_index = frame.index + 1
        for writer in stream.writers:
            for index in lost:
                writer.write_lost(index, index / stream.source.fps)
            writer.write(frame.index, frame.timestamp, tracks)
        stream.track_ids.update(int(i) for i in tracks.ids)
        for stage, seconds in times.items():   # this frame's detect, pose and track: in its overlay already
            _smooth(stream.latency_ms, stage, 1000.0 * seconds)
        if stream.renderer is not None:
            overlay = {"FPS": 1000.0 / max(sum(stream.latency_ms.get(s, 0.0) for s in STAGES), 1e-3)}
            overlay.update({f"{s} ms": stream.latency_ms.get(s, 0.0) for s in STAGES})
            overlay["latency ms"] = stream.latency_ms.get("latency", 0.0)
            image = stream.renderer.draw(frame.image, tracks, overlay)
            if stream.video is not None:
                for _ in range(len(lost) + 1):
                    stream.video.write(image)
            if stream.show:
                cv2.imshow(f"tracker: {stream.name}", image)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    self._stop.set()
        times["render"] = time.perf_counter() - t0
        times["latency"] = time.monotonic() - captured
        for stage in ("render", "latency"):
            _smooth(stream.latency_ms, stage, 1000.0 * times[stage])
        stream.frame_ms = {stage: 1000.0 * seconds for stage, seconds in times.items()}
        if self.on_frame is not None:
            self.on_frame(stream)


def new_tracker(schema: str, fps: float, config: TrackerConfig | None = None) -> PoseTracker:
    """A PoseTracker for one stream with `config`'s settings (default: TrackerConfig()), the pose
    model's `schema`, and the source's frame period unless the config sets one."""
    config = config or TrackerConfig()
    if config.schema not in (None, schema):
        raise UserError(f"tracker setting schema {config.schema!r} does not match the pose model's {schema!r}")
    return PoseTracker(replace(config, schema=schema, frame_period=config.frame_period or 1.0 / fps))

"""The real-time pipeline: capture threads -> detection, pose and tracking -> output thread.

One `Stream` per source, each with its own PoseTracker, sinks and renderer. The inference loop
takes frames from the streams in turn; the detector runs every `det_interval` frames and in
between the boxes come from the tracker's prediction of where its people (tentative ones
included) are in the new frame: they place the pose crops, and only the poses are measured.
The people of a frame whose pose the tracker needs (`PoseTracker.pose_needed`) go to the pose
network as one batch. Results pass through a bounded queue to the output thread, which draws,
writes the video and the exporters, and shows the window. End of input, Ctrl+C or
q/Esc in the window close every output, so no file is left truncated.

Every output of a stream holds the same frames: the frames processed and, before each, the
frames of a file it follows that could not be decoded (a PoseTrack file keeps positions for
the evaluation, the video the source's timing: it shows the next picture in their place). A
live source numbers only the frames it hands on, so its stale frames leave no gap. The
exporters get each frame's file name from an image folder (`Source.file_name`).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import cv2
import numpy as np

from engines.common.boxes import keypoint_extent, usable_boxes
from engines.errors import UserError, WriteError
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
    where fewer than 3 joints are confident); the usable ones, clamped to the frame."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 5).copy()
    if len(boxes) == 0:
        return boxes
    extent, count = keypoint_extent(keypoints, PROPAGATE_JOINT_SCORE)
    enough = count >= 3
    pad = (extent[enough, 2:] - extent[enough, :2]) * PROPAGATE_PADDING
    boxes[enough, :4] = np.concatenate([extent[enough, :2] - pad, extent[enough, 2:] + pad], axis=1)
    return usable_boxes(boxes, (frame_w, frame_h))[0]


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
    poses: int = 0                                   # pose estimates made (people, over all frames)
    # the latest frame processed, its tracks and its annotated picture (None without a renderer),
    # for on_frame (the --serve view reads them there)
    last_frame: Frame | None = None
    last_tracks: TrackBatch | None = None
    last_image: np.ndarray | None = None

    @property
    def name(self) -> str:
        return self.source.name

    def close(self) -> None:
        """Finish every output, even when some fail (then raise `_together` of the failures). The
        video goes first: a broken one is removed, which frees space for the other files."""
        errors = []
        for output in ([self.video] if self.video is not None else []) + self.writers:
            try:
                output.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise _together(errors)


def _together(errors: list[Exception]) -> Exception:
    """One exception for several failures: a bug as it is, failed writes as one WriteError that
    names every file."""
    bugs = [e for e in errors if not isinstance(e, WriteError)]
    if bugs or len(errors) == 1:
        return (bugs or errors)[0]
    return WriteError("; ".join(str(e) for e in errors))


@dataclass
class PipelineStats:
    frames: int
    seconds: float
    tracks: int
    lost: int          # frames the sources could not deliver (Source.lost)
    dropped: int
    interrupted: bool
    latency_ms: dict
    poses: int = 0     # pose estimates made: people whose pose the tracker needed, over all frames

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _smooth(store: dict, key: str, value: float, weight: float = 0.1) -> None:
    store[key] = value if key not in store else (1 - weight) * store[key] + weight * value


class Pipeline:
    """Runs streams to the end. estimator: .estimate(frame, boxes) -> (N,J,3); detector:
    .detect(frame) -> (N,5). on_frame(stream) is called in the output thread after each frame
    (the stream's last_frame, last_tracks and last_image hold it then)."""

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
            close_errors = []
            for stream in self.streams:
                try:
                    stream.close()
                except Exception as exc:
                    close_errors.append(exc)
        # after a failed write (a full disk) what could not be finished is the news: the line
        # files end with their last whole frame, while a PoseTrack file left as its journal is missing
        if self._output_error is not None and not (close_errors and isinstance(self._output_error, WriteError)):
            raise self._output_error
        if close_errors:
            raise _together(close_errors)
        return PipelineStats(
            frames=sum(s.frames for s in self.streams), seconds=time.monotonic() - start,
            tracks=sum(len(s.track_ids) for s in self.streams),
            lost=sum(s.source.lost for s in self.streams),
            dropped=sum(s.capture.dropped for s in self.streams),
            interrupted=interrupted or self._stop.is_set(), poses=sum(s.poses for s in self.streams),
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
                    return  # run() raises it once every output is closed

    def _process(self, stream: Stream, frame: Frame) -> tuple[TrackBatch, dict]:
        times = {}
        t0 = time.perf_counter()
        height, width = frame.image.shape[:2]
        detected = stream.frames % self.det_interval == 0
        if detected:
            boxes = self.detector.detect(frame.image)
        else:  # follow the tracker's people (tentative ones too) to where it predicts them now
            boxes = propagate_boxes(*stream.tracker.predicted_people(frame.timestamp), width, height)
        t1 = time.perf_counter()
        # poses only for the boxes that need one (PoseTracker.pose_needed); the others go without
        need = stream.tracker.pose_needed(boxes, frame.timestamp)
        keypoints = np.full((len(boxes), stream.tracker.num_joints, 3), np.nan, np.float32)
        if need.any():
            keypoints[need] = self.estimator.estimate(frame.image, boxes[need])
        stream.poses += int(need.sum())
        t2 = time.perf_counter()
        tracks = stream.tracker.update(boxes, keypoints, frame.timestamp, image=frame.image, detected=detected)
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
        file_name = stream.source.file_name
        for writer in stream.writers:
            for index in lost:
                writer.write_lost(index, index / stream.source.fps, file_name(index))
            writer.write(frame.index, frame.timestamp, tracks, file_name(frame.index))
        stream.track_ids.update(int(i) for i in tracks.ids)
        for stage, seconds in times.items():   # this frame's detect, pose and track: in its overlay already
            _smooth(stream.latency_ms, stage, 1000.0 * seconds)
        image = None
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
        stream.last_frame, stream.last_tracks, stream.last_image = frame, tracks, image
        if self.on_frame is not None:
            self.on_frame(stream)


def new_tracker(schema: str, fps: float, config: TrackerConfig | None = None) -> PoseTracker:
    """A PoseTracker for one stream with `config`'s settings (default: TrackerConfig()), the pose
    model's `schema`, and the source's frame period unless the config sets one."""
    config = config or TrackerConfig()
    if config.schema not in (None, schema):
        raise UserError(f"tracker setting schema {config.schema!r} does not match the pose model's {schema!r}")
    return PoseTracker(replace(config, schema=schema, frame_period=config.frame_period or 1.0 / fps))

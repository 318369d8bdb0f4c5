"""Streaming track writers: PoseTrack 2018 / 2017 JSON per sequence, JSONL, CSV and MOTChallenge.

Every writer takes `write(frame_index, timestamp, tracks)` once per frame (also for frames with no
people, so frame positions line up with the video) and `close()` at the end; all are context
managers. Files stay valid if the run is interrupted (Ctrl+C, crash):
- JSON writers rewrite the whole file atomically (temporary file + rename) at most every
  `flush_seconds` and on close, so the file on disk is always a complete sequence of the frames so far;
- line formats (JSONL, CSV, MOT) write each frame's lines in one call and flush, so at worst the
  last frame is missing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from engines.posetrack import (
    PoseTrackFrame, PoseTrackSequence, make_image_id, write_posetrack17, write_posetrack18,
)
from engines.schemas import get_schema
from tracker.export.head import to_posetrack18_keypoints
from tracker.tracking import TrackBatch

__all__ = ["PoseTrack18Writer", "PoseTrack17Writer", "JsonlWriter", "CsvWriter", "MotWriter", "TrackWriter"]


def _keypoints(tracks: TrackBatch, raw: bool) -> np.ndarray:
    """The keypoints to export; raw rows that were not observed this frame fall back to smoothed."""
    if not raw:
        return tracks.keypoints
    missing = ~np.isfinite(tracks.keypoints_raw).all(axis=(1, 2))
    return np.where(missing[:, None, None], tracks.keypoints, tracks.keypoints_raw)


class TrackWriter:
    """Common shape: write() per frame, close() once; `with` closes."""

    def write(self, frame_index: int, timestamp: float | None, tracks: TrackBatch) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _PoseTrackWriter(TrackWriter):
    """Collects frames of one sequence and rewrites the JSON atomically now and then."""

    _write_file = staticmethod(write_posetrack18)

    def __init__(self, path: str | os.PathLike, schema: str = "coco17", sequence: str | None = None,
                 file_name_pattern: str = "images/{sequence}/{frame:06d}.jpg", min_joint_score: float = 0.0,
                 raw: bool = False, flush_seconds: float = 2.0):
        self.path = Path(path)
        self.schema = get_schema(schema).name
        self.sequence = sequence or self.path.stem
        digits = "".join(ch for ch in self.sequence.split("_")[0] if ch.isdigit())
        self.vid_id = digits or "0"
        self.pattern = file_name_pattern
        self.min_joint_score = min_joint_score
        self.raw = raw
        self.flush_seconds = flush_seconds
        self._frames: list[PoseTrackFrame] = []
        self._last_flush = time.monotonic()
        self._closed = False

    def write(self, frame_index: int, timestamp: float | None, tracks: TrackBatch) -> None:
        kpts = to_posetrack18_keypoints(_keypoints(tracks, self.raw), self.schema)
        weak = (kpts[:, :, 2] < self.min_joint_score) | ~(kpts[:, :, 2] > 0)  # score 0 or NaN: no joint
        scores = kpts[:, :, 2].copy()
        scores[weak] = 0.0
        kpts[:, :, 2] = 1.0
        kpts[weak] = 0.0  # (0, 0, 0): the joint is left out
        n = len(tracks)
        frame = PoseTrackFrame(
            file_name=self.pattern.format(sequence=self.sequence, frame=frame_index),
            image_id=make_image_id(int(self.vid_id) % 1_000_000, frame_index), is_labeled=n > 0,
            track_ids=tracks.ids.astype(np.int64), keypoints=kpts, scores=scores,
            boxes=tracks.boxes[:, :4].astype(np.float32), head_boxes=np.full((n, 4), np.nan, np.float32))
        self._frames.append(frame)
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        seq = PoseTrackSequence(self.sequence, self.vid_id, len(self._frames), self._frames)
        self._write_file(self.path, seq)
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if not self._closed:
            self.flush()
            self._closed = True


class PoseTrack18Writer(_PoseTrackWriter):
    """One PoseTrack 2018 JSON per sequence (keypoints in PoseTrack18 order, per-joint scores)."""


class PoseTrack17Writer(_PoseTrackWriter):
    """One PoseTrack 2017 `annolist` JSON per sequence."""

    _write_file = staticmethod(write_posetrack17)


class _LineWriter(TrackWriter):
    def __init__(self, path: str | os.PathLike, schema: str = "coco17", raw: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = get_schema(schema)
        self.raw = raw
        self._file = open(self.path, "w", encoding="utf-8", newline="")
        header = self._header()
        if header:
            self._emit(header)

    def _header(self) -> str:
        return ""

    def _emit(self, text: str) -> None:
        self._file.write(text)
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def _num(v) -> float | None:
    v = float(v)
    return round(v, 3) if np.isfinite(v) else None


class JsonlWriter(_LineWriter):
    """One JSON object per frame: frame, time, tracks [{id, state, box, keypoints [[x, y, score]...]}]."""

    def write(self, frame_index: int, timestamp: float | None, tracks: TrackBatch) -> None:
        kpts = _keypoints(tracks, self.raw)
        people = [{"id": int(tracks.ids[r]), "state": int(tracks.states[r]),
                   "box": [_num(v) for v in tracks.boxes[r]],
                   "keypoints": [[_num(v) for v in joint] for joint in kpts[r]]} for r in range(len(tracks))]
        record = {"frame": int(frame_index), "time": None if timestamp is None else float(timestamp),
                  "tracks": people}
        self._emit(json.dumps(record, separators=(",", ":")) + "\n")


class CsvWriter(_LineWriter):
    """One row per person per frame: frame, time, track_id, box, score, then x, y, score per joint."""

    def _header(self) -> str:
        joints = [f"{j}_{c}" for j in self.schema.joints for c in ("x", "y", "score")]
        return ",".join(["frame", "time", "track_id", "x1", "y1", "x2", "y2", "score"] + joints) + "\n"

    def write(self, frame_index: int, timestamp: float | None, tracks: TrackBatch) -> None:
        kpts = _keypoints(tracks, self.raw).reshape(len(tracks), 3 * self.schema.num_joints)
        time_text = "" if timestamp is None else f"{timestamp:.6f}"
        lines = []
        for r in range(len(tracks)):
            values = np.concatenate([tracks.boxes[r], kpts[r]])
            lines.append(",".join([str(frame_index), time_text, str(int(tracks.ids[r]))] +
                                  [f"{v:.3f}" if np.isfinite(v) else "" for v in values]))
        if lines:
            self._emit("\n".join(lines) + "\n")


class MotWriter(_LineWriter):
    """MOTChallenge lines: frame (1-based), id, left, top, width, height, confidence, -1, -1, -1."""

    def write(self, frame_index: int, timestamp: float | None, tracks: TrackBatch) -> None:
        b = tracks.boxes
        lines = [f"{frame_index + 1},{int(tracks.ids[r])},{b[r, 0]:.2f},{b[r, 1]:.2f},"
                 f"{b[r, 2] - b[r, 0]:.2f},{b[r, 3] - b[r, 1]:.2f},{b[r, 4]:.4f},-1,-1,-1"
                 for r in range(len(tracks))]
        if lines:
            self._emit("\n".join(lines) + "\n")

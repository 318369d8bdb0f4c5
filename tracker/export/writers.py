"""Streaming track writers: PoseTrack 2018 / 2017 JSON per sequence, JSONL, CSV and MOTChallenge.

Every writer takes `write(frame_index, timestamp, tracks, file_name)` once per frame (also for
frames with no people, so frame positions line up with the video), `write_lost(frame_index,
timestamp, file_name)` for a frame of the source that could not be decoded or read (the
PoseTrack evaluation pairs frames by position, so it keeps its place), and `close()` at the end;
all are context managers. `file_name` is the frame's file relative to an image folder
(`Source.file_name`: None for a video, "" for a number no file has): PoseTrack's `file_name`,
JSONL's "file" and the CSV's file column carry it. The cost of a frame does not grow with the
run, and what is on disk stays usable if the run stops early (Ctrl+C, crash, SIGKILL, full disk):
- PoseTrack writers append each frame to a hidden journal (`tracker.export.journal`) and write
  the JSON file atomically on close; after a crash the journal recovers it;
- line formats (JSONL, CSV, MOT) write each frame's lines in one call and flush; a write that
  fails (disk full) is cut back, so the file ends with the last whole frame.
A failed write raises `WriteError` naming the file.

JSONL and CSV say per joint what its position rests on (`JointState`): "observed" this frame,
"predicted" by the tracker's filter, or "hidden" (not seen for a while; the position is a guess).
PoseTrack files carry scores only, as the format and its evaluation want.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from engines.formats.posetrack import PoseTrackFrame, make_image_id
from engines.pose.schemas import get_schema
from tracker.export.head import to_posetrack18_keypoints
from tracker.export.journal import Journal, WholeWrites
from tracker.tracking import JointState, TrackBatch

__all__ = ["PoseTrack18Writer", "PoseTrack17Writer", "JsonlWriter", "CsvWriter", "MotWriter", "TrackWriter",
           "frame_record"]


JOINT_STATE_NAMES = [state.name.lower() for state in JointState]   # indexed by JointState


def _keypoints(tracks: TrackBatch, raw: bool) -> np.ndarray:
    """The keypoints to export; raw rows that were not observed this frame fall back to smoothed."""
    if not raw:
        return tracks.keypoints
    missing = ~np.isfinite(tracks.keypoints_raw).all(axis=(1, 2))
    return np.where(missing[:, None, None], tracks.keypoints, tracks.keypoints_raw)


class TrackWriter:
    """Common shape: write() per frame, close() once; `with` closes."""

    def write(self, frame_index: int, timestamp: float | None, tracks: TrackBatch,
              file_name: str | None = None) -> None:
        raise NotImplementedError

    def write_lost(self, frame_index: int, timestamp: float | None, file_name: str | None = None) -> None:
        """A frame the source could not deliver. Formats with a row per person have none to write."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _PoseTrackWriter(TrackWriter):
    """The frames of one sequence, journalled as they come, written as one JSON file on close.
    A frame's `file_name` is its image file's, else `file_name_pattern` (a video's frames)."""

    _format = "posetrack18"

    def __init__(self, path: str | os.PathLike, schema: str = "coco17", sequence: str | None = None,
                 file_name_pattern: str = "images/{sequence}/{frame:06d}.jpg", min_joint_score: float = 0.0,
                 raw: bool = False):
        self.path = Path(path)
        self.schema = get_schema(schema).name
        self.sequence = sequence or self.path.stem
        digits = "".join(ch for ch in self.sequence.split("_")[0] if ch.isdigit())
        self.vid_id = digits or "0"
        self.pattern = file_name_pattern
        self.min_joint_score = min_joint_score
        self.raw = raw
        self._journal = Journal(self.path, self._format, self.sequence, self.vid_id)

    def write(self, frame_index: int, timestamp: float | None, tracks: TrackBatch,
              file_name: str | None = None) -> None:
        self._append(frame_index, file_name, tracks.ids.astype(np.int64),
                     to_posetrack18_keypoints(_keypoints(tracks, self.raw), self.schema),
                     tracks.boxes[:, :4].astype(np.float32))

    def write_lost(self, frame_index: int, timestamp: float | None, file_name: str | None = None) -> None:
        # an empty entry: the evaluation pairs frames by position, so every later one keeps its place
        self._append(frame_index, file_name, np.zeros(0, np.int64), np.zeros((0, 17, 3), np.float32),
                     np.zeros((0, 4), np.float32))

    def _append(self, frame_index: int, file_name: str | None, ids: np.ndarray, kpts: np.ndarray,
                boxes: np.ndarray) -> None:
        weak = (kpts[:, :, 2] < self.min_joint_score) | ~(kpts[:, :, 2] > 0)  # score 0 or NaN: no joint
        scores = kpts[:, :, 2].copy()
        scores[weak] = 0.0
        kpts[:, :, 2] = 1.0
        kpts[weak] = 0.0  # (0, 0, 0): the joint is left out
        n = len(ids)
        self._journal.append(PoseTrackFrame(
            file_name=self.pattern.format(sequence=self.sequence, frame=frame_index) if file_name is None
            else file_name,
            image_id=make_image_id(int(self.vid_id) % 1_000_000, frame_index), is_labeled=n > 0,
            track_ids=ids, keypoints=kpts, scores=scores, boxes=boxes,
            head_boxes=np.full((n, 4), np.nan, np.float32)))

    def close(self) -> None:
        if self._journal.path.exists():
            self._journal.finish()


class PoseTrack18Writer(_PoseTrackWriter):
    """One PoseTrack 2018 JSON per sequence (keypoints in PoseTrack18 order, per-joint scores)."""


class PoseTrack17Writer(_PoseTrackWriter):
    """One PoseTrack 2017 `annolist` JSON per sequence."""

    _format = "posetrack17"


class _LineWriter(TrackWriter):
    def __init__(self, path: str | os.PathLike, schema: str = "coco17", raw: bool = False):
        self.path = Path(path)
        self.schema = get_schema(schema)
        self.raw = raw
        self._file = WholeWrites(self.path, self.path)
        header = self._header()
        if header:
            self._emit(header)

    def _header(self) -> str:
        return ""

    def _emit(self, text: str) -> None:
        self._file.write(text)

    def close(self) -> None:
        self._file.close()


def _num(v) -> float | None:
    v = float(v)
    return round(v, 3) if np.isfinite(v) else None


class JsonlWriter(_LineWriter):
    """One JSON object per frame: frame, time, file (only for a frame of an image folder), tracks
    [{id, state, box, keypoints [[x, y, score]...], joint_states ["observed" | "predicted" |
    "hidden", ...]}]; a frame the source could not deliver has no one in tracks and lost: true."""

    def write(self, frame_index: int, timestamp: float | None, tracks: TrackBatch,
              file_name: str | None = None) -> None:
        self._emit_record(frame_record(frame_index, timestamp, tracks, file_name, self.raw))

    def write_lost(self, frame_index: int, timestamp: float | None, file_name: str | None = None) -> None:
        self._emit_record(_record(frame_index, timestamp, file_name, [], lost=True))

    def _emit_record(self, record: dict) -> None:
        self._emit(json.dumps(record, separators=(",", ":")) + "\n")


def frame_record(frame_index: int, timestamp: float | None, tracks: TrackBatch, file_name: str | None = None,
                 raw: bool = False) -> dict:
    """One frame as a JSONL line holds it (JsonlWriter's; `--serve` sends the same)."""
    kpts = _keypoints(tracks, raw)
    people = [{"id": int(tracks.ids[r]), "state": int(tracks.states[r]),
               "box": [_num(v) for v in tracks.boxes[r]],
               "keypoints": [[_num(v) for v in joint] for joint in kpts[r]],
               "joint_states": [JOINT_STATE_NAMES[s] for s in tracks.joint_states[r]]}
              for r in range(len(tracks))]
    return _record(frame_index, timestamp, file_name, people)


def _record(frame_index: int, timestamp: float | None, file_name: str | None, people: list, **flags) -> dict:
    record = {"frame": int(frame_index), "time": None if timestamp is None else float(timestamp)}
    if file_name is not None:
        record["file"] = file_name
    record.update(tracks=people, **flags)
    return record


class CsvWriter(_LineWriter):
    """One row per person per frame: frame, time, file (empty but for an image folder), track_id,
    box, score, then x, y, score, state per joint."""

    def _header(self) -> str:
        joints = [f"{j}_{c}" for j in self.schema.joints for c in ("x", "y", "score", "state")]
        return ",".join(["frame", "time", "file", "track_id", "x1", "y1", "x2", "y2", "score"] + joints) + "\n"

    def write(self, frame_index: int, timestamp: float | None, tracks: TrackBatch,
              file_name: str | None = None) -> None:
        kpts = _keypoints(tracks, self.raw)
        time_text = "" if timestamp is None else f"{timestamp:.6f}"
        file_text = _quoted(file_name or "")
        lines = []
        for r in range(len(tracks)):
            cells = [str(frame_index), time_text, file_text, str(int(tracks.ids[r]))] + [_cell(v) for v in tracks.boxes[r]]
            for joint, state in zip(kpts[r], tracks.joint_states[r]):
                cells += [_cell(v) for v in joint] + [JOINT_STATE_NAMES[state]]
            lines.append(",".join(cells))
        if lines:
            self._emit("\n".join(lines) + "\n")


def _cell(v) -> str:
    return f"{v:.3f}" if np.isfinite(v) else ""


def _quoted(text: str) -> str:
    """A CSV cell holding `text` as is: quoted (RFC 4180) when it holds a comma, quote or line break."""
    if not any(c in text for c in ',"\r\n'):
        return text
    return '"' + text.replace('"', '""') + '"'


class MotWriter(_LineWriter):
    """MOTChallenge lines: frame (1-based), id, left, top, width, height, confidence, -1, -1, -1."""

    def write(self, frame_index: int, timestamp: float | None, tracks: TrackBatch,
              file_name: str | None = None) -> None:
        b = tracks.boxes
        lines = [f"{frame_index + 1},{int(tracks.ids[r])},{b[r, 0]:.2f},{b[r, 1]:.2f},"
                 f"{b[r, 2] - b[r, 0]:.2f},{b[r, 3] - b[r, 1]:.2f},{b[r, 4]:.4f},-1,-1,-1"
                 for r in range(len(tracks))]
        if lines:
            self._emit("\n".join(lines) + "\n")

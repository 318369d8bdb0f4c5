"""The detector interface: subclasses turn frames into candidate person boxes; the base class
checks the frames, applies the score threshold and NMS, and returns (N,5) float32 arrays."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from engines.detectors.nms import nms
from engines.errors import UserError

__all__ = ["Detector", "validate_frame"]


def validate_frame(frame) -> np.ndarray:
    """The frame itself if it is an HxWx3 uint8 BGR image, else UserError."""
    if not isinstance(frame, np.ndarray):
        raise UserError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise UserError(f"frame must be HxWx3 BGR, got shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise UserError(f"frame must be uint8, got {frame.dtype}")
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise UserError(f"frame is too small to detect people in: {frame.shape[1]}x{frame.shape[0]}")
    return frame


class Detector(ABC):
    """Person detector. `detect(frame)` -> (N,5) float32 x1, y1, x2, y2, score, best first,
    scores >= score_thresh, overlaps above nms_thresh removed, at most max_people rows."""

    def __init__(self, score_thresh: float = 0.3, nms_thresh: float = 0.5, max_people: int = 100):
        self.score_thresh = float(score_thresh)
        self.nms_thresh = float(nms_thresh)
        self.max_people = int(max_people)

    @abstractmethod
    def candidates(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per frame, person boxes (K,5) xyxy+score in frame pixels, before threshold and NMS."""

    def detect(self, frame_bgr: np.ndarray) -> np.ndarray:
        return self.detect_batch([frame_bgr])[0]

    def detect_batch(self, frames_bgr: Sequence[np.ndarray]) -> list[np.ndarray]:
        frames = [validate_frame(f) for f in frames_bgr]
        if not frames:
            return []
        return [self._finish(c, f.shape) for c, f in zip(self.candidates(frames), frames)]

    def _finish(self, boxes: np.ndarray, shape) -> np.ndarray:
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 5)
        boxes = boxes[np.isfinite(boxes).all(axis=1) & (boxes[:, 4] >= self.score_thresh)]
        h, w = shape[:2]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
        keep = nms(boxes[:, :4], boxes[:, 4], self.nms_thresh, self.max_people)
        return np.ascontiguousarray(boxes[keep], dtype=np.float32)

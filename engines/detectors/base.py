"""The detector interface: subclasses turn frames into candidate person boxes; the base class
checks the frames, applies the score threshold and NMS, and returns (N,5) float32 arrays."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from engines.common.boxes import usable_boxes
from engines.common.frames import validate_frame
from engines.detectors.nms import nms

__all__ = ["Detector"]


class Detector(ABC):
    """Person detector. `detect(frame)` -> (N,5) float32 x1, y1, x2, y2, score, best first,
    scores >= score_thresh, overlaps above nms_thresh removed, at most max_people rows, clamped
    to the frame (the usable ones: engines.common.boxes). NMS works as the family's own code
    does: on boxes clamped first (this project's detectors) or as the network gave them (YOLO
    families), and with `nms_offset` added to widths and heights (1: YOLOX's pixel count)."""

    nms_on_clamped = True
    nms_offset = 0.0

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
        frame_wh = (shape[1], shape[0])
        if self.nms_on_clamped:
            boxes = usable_boxes(boxes, frame_wh)[0]
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], self.nms_thresh, self.max_people, self.nms_offset)]
        return np.ascontiguousarray(usable_boxes(boxes, frame_wh)[0], dtype=np.float32)

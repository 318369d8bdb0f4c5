"""OpenCV's HOG + linear SVM people detector (Dalal & Triggs): no download, CPU only, upright
full-body people of at least ~64x128 px. The fallback when no ONNX detector is available."""

from __future__ import annotations

import cv2
import numpy as np

from engines.detectors.base import Detector

__all__ = ["HogDetector"]


class HogDetector(Detector):
    """SVM margins are mapped to (0, 1) with a logistic so they share the score scale of the
    other detectors: margin 0 -> 0.5. Frames wider than `max_width` are shrunk first (speed)."""

    def __init__(self, max_width: int = 640, win_stride: int = 8, scale: float = 1.05,
                 score_thresh: float = 0.5, **options):
        super().__init__(score_thresh=score_thresh, **options)
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.max_width = int(max_width)
        self.win_stride = (int(win_stride), int(win_stride))
        self.scale = float(scale)

    def candidates(self, frames):
        results = []
        for frame in frames:
            shrink = min(1.0, self.max_width / frame.shape[1])
            small = cv2.resize(frame, None, fx=shrink, fy=shrink) if shrink < 1 else frame
            rects, margins = self.hog.detectMultiScale(small, winStride=self.win_stride,
                                                       padding=(8, 8), scale=self.scale)
            rects = np.asarray(rects, dtype=np.float32).reshape(-1, 4) / shrink
            margins = np.asarray(margins, dtype=np.float32).reshape(-1)
            scores = 1.0 / (1.0 + np.exp(-margins))
            results.append(np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:], scores[:, None]], axis=1))
        return results

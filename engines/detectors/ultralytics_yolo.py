"""Ultralytics YOLOv8 / YOLO11 ONNX detector (`yolo export format=onnx`).

Input: RGB, letterboxed centred with grey 114, float32 scaled to 0..1. Output [1, 4+C, N]: per
anchor column (cx, cy, w, h) in input pixels, then C class scores (sigmoids applied, no
objectness); the export already decodes the grid.
"""

from __future__ import annotations

import numpy as np

from engines.detectors.onnx_yolo import OnnxYoloDetector
from engines.errors import UserError

__all__ = ["UltralyticsDetector"]


class UltralyticsDetector(OnnxYoloDetector):
    centred_letterbox = True
    default_size = 640

    def preprocess(self, image):
        rgb = image[..., ::-1].transpose(2, 0, 1)
        return np.ascontiguousarray(rgb, dtype=np.float32) / np.float32(255.0)

    def check_output(self, output):
        if output.ndim != 3 or output.shape[1] < 5 + self.person_class or output.shape[1] >= output.shape[2]:
            raise UserError(f"{self.path.name}: output shape {list(output.shape)} is not Ultralytics' [batch, 4+classes, anchors]")

    def decode(self, out):
        out = out.astype(np.float32)
        cxcy, wh = out[:2].T, out[2:4].T
        score = out[4 + self.person_class]
        return np.concatenate([cxcy - wh / 2, cxcy + wh / 2, score[:, None]], axis=1)

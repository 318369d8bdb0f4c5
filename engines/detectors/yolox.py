"""YOLOX ONNX detector (Megvii's official exports, e.g. the 0.1.1rc0 release yolox_nano.onnx).

Input: BGR, letterboxed top-left with grey 114, float32 0..255 with no mean/std (the models
retrained in YOLOX PR #523, Aug 2021, which the 0.1.1rc0 release files are; older "legacy"
weights normalised and are not supported). Output [1, N, 5+C]: per anchor
(x, y, w, h, objectness, class scores), sigmoids applied. The official exporter leaves the grid
decode out (`decode_in_inference` off), so by default x, y are cell offsets and w, h log sizes:
xy = (out + cell) * stride, wh = exp(out) * stride over strides 8, 16, 32. Pass
`grid_decoded=True` for exports that already emit input-pixel boxes.
"""

from __future__ import annotations

import numpy as np

from engines.detectors.onnx_yolo import OnnxYoloDetector
from engines.errors import UserError

__all__ = ["YoloxDetector", "yolox_grid"]

STRIDES = (8, 16, 32)


def yolox_grid(size_wh: tuple[int, int], strides=STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Cell coordinates (N,2) x, y and strides (N,1), in the order YOLOX lays out its anchors:
    stride by stride, row-major within each."""
    cells, cell_strides = [], []
    for s in strides:
        gh, gw = size_wh[1] // s, size_wh[0] // s
        ys, xs = np.mgrid[:gh, :gw]
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        cell_strides.append(np.full((gh * gw, 1), s))
    return np.concatenate(cells).astype(np.float32), np.concatenate(cell_strides).astype(np.float32)


class YoloxDetector(OnnxYoloDetector):
    """As the official YOLOX ONNX path (demo/ONNXRuntime/onnx_inference.py): the resize truncates
    `w * r` and `h * r`, and NMS counts a box's pixels inclusively (demo_utils.nms: +1)."""

    centred_letterbox = False
    truncated_resize = True
    nms_offset = 1.0
    default_size = 640

    def __init__(self, path, grid_decoded: bool = False, **options):
        super().__init__(path, **options)
        self.grid_decoded = grid_decoded
        self.cells, self.strides = yolox_grid(self.input_size)

    def preprocess(self, image):
        return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)

    def check_output(self, output):
        if output.ndim != 3 or output.shape[2] < 6 + self.person_class:
            raise UserError(f"{self.path.name}: output shape {list(output.shape)} is not YOLOX's [batch, anchors, 5+classes]")
        if not self.grid_decoded and output.shape[1] != len(self.cells):
            raise UserError(f"{self.path.name}: {output.shape[1]} anchors, but a {self.input_size[0]}x"
                            f"{self.input_size[1]} YOLOX input has {len(self.cells)} (strides 8/16/32)")

    def decode(self, out):
        out = out.astype(np.float32)
        if self.grid_decoded:
            xy, wh = out[:, :2], out[:, 2:4]
        else:
            xy = (out[:, :2] + self.cells) * self.strides
            wh = np.exp(np.minimum(out[:, 2:4], 20.0)) * self.strides   # clamp: exp overflow on junk
        score = out[:, 4] * out[:, 5 + self.person_class]
        return np.concatenate([xy - wh / 2, xy + wh / 2, score[:, None]], axis=1)

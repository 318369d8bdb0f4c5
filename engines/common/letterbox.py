"""Fitting a frame into a fixed network input without distortion: resize keeping the aspect
ratio, pad with grey 114 (the YOLO detectors, CenterNet, and a video of mixed frame sizes)."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["PAD_VALUE", "Letterbox", "letterbox"]

PAD_VALUE = 114


class Letterbox:
    """How a frame was fitted into the network input: resized by `ratio`, then offset by `pad`."""

    def __init__(self, ratio: float, pad_xy: tuple[float, float]):
        self.ratio = ratio
        self.pad = np.array(pad_xy, dtype=np.float32)

    def to_frame(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Boxes from network-input pixels back to frame pixels."""
        return (boxes_xyxy - np.tile(self.pad, 2)) / self.ratio


def letterbox(frame: np.ndarray, size_wh: tuple[int, int], centred: bool,
              truncate: bool = False) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping aspect so the frame fits `size_wh`, pad with grey 114: at the bottom/right
    (YOLOX) or evenly on both sides (Ultralytics, `centred`). The resized size is rounded, or
    truncated with `truncate` (YOLOX's official preproc: `int(w * r)`)."""
    h, w = frame.shape[:2]
    out_w, out_h = size_wh
    ratio = min(out_w / w, out_h / h)
    fit = int if truncate else round
    new_w, new_h = int(fit(w * ratio)), int(fit(h * ratio))
    resized = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((out_h, out_w, 3), PAD_VALUE, dtype=np.uint8)
    if centred:
        # Ultralytics splits an odd padding with the extra pixel at the bottom/right
        left, top = int(round((out_w - new_w) / 2 - 0.1)), int(round((out_h - new_h) / 2 - 0.1))
    else:
        left = top = 0
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas, Letterbox(ratio, (left, top))

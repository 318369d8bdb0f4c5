"""Greedy box non-maximum suppression (vectorised per step), as torchvision's ops.nms, which is
no dependency here."""

from __future__ import annotations

import numpy as np

from engines.common.boxes import box_iou

__all__ = ["nms"]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thresh: float, max_keep: int | None = None,
        offset: float = 0.0) -> np.ndarray:
    """Indices (int64) kept by greedy NMS, best score first; a box goes when its IoU (box_iou with
    `offset`) with a kept one exceeds `iou_thresh`."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    boxes = np.asarray(boxes)
    keep = []
    while order.size and (max_keep is None or len(keep) < max_keep):
        best = order[0]
        keep.append(best)
        order = order[1:][box_iou(boxes[best:best + 1], boxes[order[1:]], offset)[0] <= iou_thresh]
    return np.asarray(keep, dtype=np.int64)

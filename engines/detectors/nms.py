"""Greedy box non-maximum suppression and pairwise IoU (vectorised per step).

Kept here: torchvision (ops.nms, box_iou) is no dependency; the tracker needs the IoU matrix itself."""

from __future__ import annotations

import numpy as np

__all__ = ["box_iou", "nms"]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (N,M) float64 between boxes a (N,4+) and b (M,4+) xyxy; 0 where the union is empty.
    Written per coordinate plane: NMS and every tracker association stage call it."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(w, 0) * np.maximum(h, 0)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thresh: float, max_keep: int | None = None) -> np.ndarray:
    """Indices (int64) kept by greedy NMS, best score first; a box goes when its IoU with a
    kept one exceeds `iou_thresh`."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    boxes = np.asarray(boxes)
    keep = []
    while order.size and (max_keep is None or len(keep) < max_keep):
        best = order[0]
        keep.append(best)
        order = order[1:][box_iou(boxes[best:best + 1], boxes[order[1:]])[0] <= iou_thresh]
    return np.asarray(keep, dtype=np.int64)

"""Greedy box non-maximum suppression and pairwise IoU (vectorised per step)."""

from __future__ import annotations

import numpy as np

__all__ = ["box_iou", "nms"]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (N,M) between boxes a (N,4+) and b (M,4+) xyxy."""
    a = np.asarray(a, dtype=np.float64)[:, :4]
    b = np.asarray(b, dtype=np.float64)[:, :4]
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
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

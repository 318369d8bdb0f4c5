"""Person boxes as rows of numpy arrays (N,4+) x1, y1, x2, y2[, score] in frame pixels: the one
rule for a usable box, pairwise IoU, and the box around a person's keypoints.

IoU is written here because torchvision (ops.box_iou) is no dependency; detectors' NMS, the
tracker's association and its duplicate rules all use it."""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_BOX_SIZE", "usable_boxes", "box_iou", "keypoint_extent"]

MIN_BOX_SIZE = 1.0   # pixels: a box narrower or lower than this holds no person to estimate


def usable_boxes(boxes: np.ndarray, frame_wh: tuple[int, int] | None = None,
                 min_size: float = MIN_BOX_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(the usable rows float32, their indices int64) of boxes (N,4+): every value finite and,
    once clamped to the frame [0, w] x [0, h] (when its size is given), at least `min_size`
    wide and tall. The rows are returned clamped."""
    boxes = np.asarray(boxes, dtype=np.float32)
    boxes = boxes.reshape(-1, boxes.shape[-1] if boxes.ndim > 1 else 4)
    finite = np.isfinite(boxes).all(axis=1)
    clean = np.where(finite[:, None], boxes, 0.0).astype(np.float32)
    if frame_wh is not None:
        clean[:, [0, 2]] = clean[:, [0, 2]].clip(0.0, float(frame_wh[0]))
        clean[:, [1, 3]] = clean[:, [1, 3]].clip(0.0, float(frame_wh[1]))
    big_enough = (clean[:, 2] - clean[:, 0] >= min_size) & (clean[:, 3] - clean[:, 1] >= min_size)
    kept = np.flatnonzero(finite & big_enough).astype(np.int64)
    return clean[kept], kept


def box_iou(a: np.ndarray, b: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """IoU (N,M) float64 between boxes a (N,4+) and b (M,4+) xyxy; 0 where the union is empty.
    `offset` is added to every width and height: 1 counts pixels inclusively, as some official
    NMS code does (YOLOX's). Written per coordinate plane: NMS and every tracker association
    stage call it."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + offset
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + offset
    inter = np.maximum(w, 0) * np.maximum(h, 0)
    area_a = np.maximum(a[:, 2] - a[:, 0] + offset, 0) * np.maximum(a[:, 3] - a[:, 1] + offset, 0)
    area_b = np.maximum(b[:, 2] - b[:, 0] + offset, 0) * np.maximum(b[:, 3] - b[:, 1] + offset, 0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def keypoint_extent(keypoints: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N,4) float32 around each person's joints scoring at least `min_score`, zeros for a
    person with none; their counts (N,)) for keypoints (N,J,3)."""
    seen = np.nan_to_num(keypoints[..., 2]) >= min_score
    xy = keypoints[..., :2]
    low = np.where(seen[..., None], xy, np.inf).min(axis=1)
    high = np.where(seen[..., None], xy, -np.inf).max(axis=1)
    count = seen.sum(axis=1)
    extent = np.where(count[:, None] > 0, np.concatenate([low, high], axis=1), 0.0)
    return extent.astype(np.float32), count

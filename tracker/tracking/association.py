"""Frame-to-frame association: pose/box similarity and gated optimal assignment."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from engines.oks import oks_matrix

__all__ = ["box_iou", "pose_similarity", "gated_assignment", "FLIP_CHECK_BELOW"]

FLIP_CHECK_BELOW = 0.5  # a detection whose best OKS is below this is also tried left/right-swapped


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,M) IoU of xyxy boxes a (N,4+) and b (M,4+)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:4] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:4] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def pose_similarity(track_boxes: np.ndarray, track_kpts: np.ndarray, det_boxes: np.ndarray,
                    det_kpts: np.ndarray, sigmas: np.ndarray, flip_perm: np.ndarray | None,
                    oks_weight: float, joint_thresh: float) -> tuple[np.ndarray, np.ndarray]:
    """Similarity (T,D) in [0,1] = oks_weight * OKS + (1 - oks_weight) * IoU, and which pairs matched flipped.

    OKS compares each track's predicted pose with each detection, scaled by the track's box area;
    joints scoring below `joint_thresh` in either pose are left out. With `flip_perm`, the detection
    is also compared with its left/right labels swapped (a common pose-model confusion) and the
    better of the two counts, for detections whose best plain OKS is below FLIP_CHECK_BELOW;
    `flipped` marks pairs where the swapped labelling won.
    """
    if len(track_boxes) == 0 or len(det_boxes) == 0:
        empty = np.zeros((len(track_boxes), len(det_boxes)))
        return empty, empty.astype(bool)
    areas = np.prod(track_boxes[:, 2:4] - track_boxes[:, :2], axis=1)
    oks = np.array(oks_matrix(track_kpts, det_kpts, areas, sigmas, score_thresh=joint_thresh), np.float64)
    flipped = np.zeros(oks.shape, bool)
    if flip_perm is not None:
        # Only detections that no track explains well are tried swapped: the usual frame pays nothing.
        unclear = np.flatnonzero(oks.max(axis=0) < FLIP_CHECK_BELOW)
        if unclear.size:
            oks_flip = oks_matrix(track_kpts, det_kpts[unclear][:, flip_perm], areas, sigmas, score_thresh=joint_thresh)
            flipped[:, unclear] = oks_flip > oks[:, unclear]
            oks[:, unclear] = np.maximum(oks[:, unclear], oks_flip)
    iou = box_iou(track_boxes, det_boxes)
    return oks_weight * oks + (1.0 - oks_weight) * iou, flipped


def gated_assignment(similarity: np.ndarray, min_similarity: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-similarity one-to-one matching that never pairs below `min_similarity`.

    Returns (matches (K,2) of row/column indices, unmatched rows, unmatched columns).
    """
    rows, cols = similarity.shape
    if rows == 0 or cols == 0:
        return np.zeros((0, 2), np.int64), np.arange(rows), np.arange(cols)
    allowed = similarity >= min_similarity
    # Gated pairs get a cost no allowed pair can reach, so the solver uses them only to fill slots,
    # and they are dropped afterwards.
    cost = np.where(allowed, 1.0 - similarity, 1e6)
    r, c = linear_sum_assignment(cost)
    keep = allowed[r, c]
    matches = np.stack([r[keep], c[keep]], axis=1)
    free_rows = np.ones(rows, bool)
    free_rows[matches[:, 0]] = False
    free_cols = np.ones(cols, bool)
    free_cols[matches[:, 1]] = False
    return matches, np.flatnonzero(free_rows), np.flatnonzero(free_cols)

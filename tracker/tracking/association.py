"""Frame-to-frame association: pose/box similarity, gated optimal assignment, and `Matches`, what
one association stage returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from engines.common.boxes import box_iou
from engines.pose.oks import oks_matrix

__all__ = ["pose_similarity", "gated_assignment", "Matches", "match_rows", "FLIP_CHECK_BELOW"]

FLIP_CHECK_BELOW = 0.5  # a detection whose best OKS is below this is also tried left/right-swapped


def pose_similarity(track_boxes: np.ndarray, track_kpts: np.ndarray, det_boxes: np.ndarray,
                    det_kpts: np.ndarray, sigmas: np.ndarray, flip_perm: np.ndarray | None,
                    oks_weight: float, joint_thresh: float,
                    posed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Similarity (T,D) in [0,1] = oks_weight * OKS + (1 - oks_weight) * IoU, and which pairs matched flipped.
    A detection given without a pose (`posed` False) is compared by IoU alone.

    OKS compares each track's predicted pose with each detection, scaled by the track's box area;
    joints scoring below `joint_thresh` in either pose are left out. With `flip_perm`, the detection
    is also compared with its left/right labels swapped (a common pose-model confusion) and the
    better of the two counts, for detections whose best plain OKS is below FLIP_CHECK_BELOW;
    `flipped` marks pairs where the swapped labelling won.
    """
    if len(track_boxes) == 0 or len(det_boxes) == 0:
        empty = np.zeros((len(track_boxes), len(det_boxes)))
        return empty, empty.astype(bool)
    areas = (track_boxes[:, 2] - track_boxes[:, 0]) * (track_boxes[:, 3] - track_boxes[:, 1])
    oks = oks_matrix(track_kpts, det_kpts, areas, sigmas, joint_thresh)
    flipped = np.zeros(oks.shape, bool)
    if flip_perm is not None:
        # Only detections that no track explains well are tried swapped: the usual frame pays nothing.
        unclear = np.flatnonzero(oks.max(axis=0) < FLIP_CHECK_BELOW)
        if unclear.size:
            oks_flip = oks_matrix(track_kpts, det_kpts[unclear][:, flip_perm], areas, sigmas, joint_thresh)
            flipped[:, unclear] = oks_flip > oks[:, unclear]
            oks[:, unclear] = np.maximum(oks[:, unclear], oks_flip)
    iou = box_iou(track_boxes, det_boxes)
    similarity = oks_weight * oks + (1.0 - oks_weight) * iou
    if posed is not None and not posed.all():
        similarity[:, ~posed] = iou[:, ~posed]
    return similarity, flipped


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


@dataclass
class Matches:
    """One association stage's result: matched (track row, detection row) pairs and what is left."""

    tracks: np.ndarray                # (K,) track rows
    detections: np.ndarray            # (K,) detection rows
    flipped: np.ndarray               # (K,) bool: the detection matched with left/right labels swapped
    unmatched_tracks: np.ndarray      # track rows offered to the stage and left unmatched
    unmatched_detections: np.ndarray  # detection rows offered to the stage and left unmatched

    @staticmethod
    def nothing(track_rows: np.ndarray, det_rows: np.ndarray) -> "Matches":
        """No pairs: everything offered is left."""
        none = np.zeros(0, np.int64)
        return Matches(none, none, np.zeros(0, bool), track_rows, det_rows)

    @staticmethod
    def concatenate(stages: list["Matches"]) -> "Matches":
        """The pairs of several stages (their leftovers are not merged: they are stage-specific)."""
        none = np.zeros(0, np.int64)
        return Matches(np.concatenate([m.tracks for m in stages]), np.concatenate([m.detections for m in stages]),
                       np.concatenate([m.flipped for m in stages]), none, none)


def match_rows(track_rows: np.ndarray, det_rows: np.ndarray, similarity: np.ndarray, flipped: np.ndarray,
               min_similarity: float) -> Matches:
    """Gated optimal matching of the given track and detection rows, `similarity` and `flipped`
    being (len(track_rows), len(det_rows))."""
    pairs, free_tracks, free_dets = gated_assignment(similarity, min_similarity)
    return Matches(track_rows[pairs[:, 0]], det_rows[pairs[:, 1]], flipped[pairs[:, 0], pairs[:, 1]],
                   track_rows[free_tracks], det_rows[free_dets])

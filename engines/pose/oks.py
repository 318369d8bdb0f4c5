"""Object keypoint similarity (OKS) as a vectorised N x M matrix, for associating poses across
frames (the official HRNet `oks_iou` and OKS-NMS of evaluation live in trainer.oks_nms).

OKS per joint is exp(-d^2 / (2 * area * (2 sigma)^2)); a pose pair's OKS is the mean over joints.
Not pycocotools': its OKS (COCOeval.computeOks) works only per image on a loaded COCO evaluation.
"""

from __future__ import annotations

import numpy as np

from engines.pose.schemas import COCO17

__all__ = ["oks_matrix", "oks_pairs", "sigmas_or_coco"]

_EPS = np.spacing(1)


def sigmas_or_coco(sigmas) -> np.ndarray:
    """OKS sigmas as float64, COCO-17's when None."""
    return np.asarray(COCO17.sigmas if sigmas is None else sigmas, dtype=np.float64)


def oks_matrix(kpts_a: np.ndarray, kpts_b: np.ndarray, areas_a: np.ndarray, sigmas,
               score_thresh=None) -> np.ndarray:
    """OKS (N,M) float64 between poses a (N,J,3) and b (M,J,3), scaled by a's areas (N,).
    Joints scoring below `score_thresh` in either pose, or with a non-finite coordinate, are
    left out; the mean is over the rest, 0 where none is left.

    Computed on contiguous (N,M,J) planes of x and y, in place: the tracker calls this for every
    association stage, and it is the largest part of a tracker update."""
    a, a_counted = _usable(kpts_a, score_thresh)
    b, b_counted = _usable(kpts_b, score_thresh)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    n = a_counted.astype(np.float64) @ b_counted.T.astype(np.float64)   # joints counted per pair
    return _mean_oks(a[:, None], b[None, :], a_counted[:, None] & b_counted[None, :], n,
                     np.asarray(areas_a, dtype=np.float64)[:, None], sigmas)


def oks_pairs(kpts_a: np.ndarray, kpts_b: np.ndarray, areas_a: np.ndarray, sigmas,
              score_thresh=None) -> np.ndarray:
    """OKS (P,) of each pose of a (P,J,3) with the pose in the same place of b (P,J,3), as
    oks_matrix's diagonal, without the rest of the matrix."""
    a, a_counted = _usable(kpts_a, score_thresh)
    b, b_counted = _usable(kpts_b, score_thresh)
    both = a_counted & b_counted
    return _mean_oks(a, b, both, both.sum(axis=-1), np.asarray(areas_a, dtype=np.float64), sigmas)


def _usable(kpts, score_thresh) -> tuple[np.ndarray, np.ndarray]:
    """Poses as float64 with the joints left out set to 0 (no NaN in the sums), and which are counted."""
    k = np.asarray(kpts, dtype=np.float64)
    counted = np.isfinite(k[..., :2]).all(axis=-1)
    if score_thresh is not None:
        counted &= k[..., 2] >= score_thresh
    if not counted.all():
        k = np.where(counted[..., None], k, 0.0)
    return k, counted


def _mean_oks(a: np.ndarray, b: np.ndarray, both: np.ndarray, n: np.ndarray, areas: np.ndarray,
              sigmas) -> np.ndarray:
    """Mean per-joint OKS over the joints counted in `both` (n of them), for poses a and b
    (...,J,3) that broadcast against each other, scaled by `areas` (..., without J)."""
    e = a[..., 0] - b[..., 0]
    e *= e
    dy = a[..., 1] - b[..., 1]
    dy *= dy
    e += dy
    # e = -d^2 / variances / area / 2, then the per-joint OKS
    e /= -(sigmas_or_coco(sigmas) * 2) ** 2
    e /= areas[..., None] + _EPS
    e *= 0.5
    np.exp(e, out=e)
    e *= both
    return np.where(n > 0, e.sum(axis=-1) / np.maximum(n, 1), 0.0)

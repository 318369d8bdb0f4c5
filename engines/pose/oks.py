"""Object keypoint similarity (OKS) as a vectorised N x M matrix, for associating poses across
frames (the official HRNet `oks_iou` and OKS-NMS of evaluation live in trainer.oks_nms).

OKS per joint is exp(-d^2 / (2 * area * (2 sigma)^2)); a pose pair's OKS is the mean over joints.
Not pycocotools': its OKS (COCOeval.computeOks) works only per image on a loaded COCO evaluation.
"""

from __future__ import annotations

import numpy as np

from engines.pose.schemas import COCO17

__all__ = ["oks_matrix", "sigmas_or_coco"]

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
    a = np.asarray(kpts_a, dtype=np.float64)
    b = np.asarray(kpts_b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    a_counted = np.isfinite(a[..., :2]).all(axis=2)
    b_counted = np.isfinite(b[..., :2]).all(axis=2)
    if score_thresh is not None:
        a_counted &= a[..., 2] >= score_thresh
        b_counted &= b[..., 2] >= score_thresh
    if not (a_counted.all() and b_counted.all()):   # keep NaN out of the sums below
        a = np.where(a_counted[..., None], a, 0.0)
        b = np.where(b_counted[..., None], b, 0.0)
    e = a[:, None, :, 0] - b[None, :, :, 0]
    e *= e
    dy = a[:, None, :, 1] - b[None, :, :, 1]
    dy *= dy
    e += dy
    # e = -d^2 / variances / area / 2, then the per-joint OKS
    e /= -(sigmas_or_coco(sigmas) * 2) ** 2
    e /= np.asarray(areas_a, dtype=np.float64)[:, None, None] + _EPS
    e *= 0.5
    np.exp(e, out=e)
    e *= a_counted[:, None, :] & b_counted[None, :, :]
    n = a_counted.astype(np.float64) @ b_counted.T.astype(np.float64)   # joints counted per pair
    return np.where(n > 0, e.sum(axis=2) / np.maximum(n, 1), 0.0)

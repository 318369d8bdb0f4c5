"""Object keypoint similarity (OKS): the official HRNet `oks_iou`, OKS-NMS and soft OKS-NMS,
and a vectorised N x M OKS matrix for associating poses across frames.

OKS per joint is exp(-d^2 / (2 * area * (2 sigma)^2)); a pose pair's OKS is the mean over joints.
"""

from __future__ import annotations

import numpy as np

from engines.pose.schemas import COCO17

__all__ = ["oks_iou", "oks_matrix", "oks_nms", "soft_oks_nms"]

_EPS = np.spacing(1)


def _sigmas(sigmas) -> np.ndarray:
    return np.asarray(COCO17.sigmas if sigmas is None else sigmas, dtype=np.float64)


def oks_iou(kpts_g: np.ndarray, kpts_d: np.ndarray, area_g: float, areas_d: np.ndarray,
            sigmas=None, vis_thresh=None) -> np.ndarray:
    """OKS (K,) float64 of one pose (J,3) against K poses (K,J,3), official semantics: the
    area is the mean of the two areas; with `vis_thresh`, only joints whose *detection* score
    exceeds it count (the official `list(vg > t) and list(vd > t)` evaluates to the second list)."""
    g = np.asarray(kpts_g).reshape(-1, 3)
    d = np.asarray(kpts_d).reshape(-1, g.shape[0], 3)
    variances = (_sigmas(sigmas) * 2) ** 2
    sq = ((d[..., 0] - g[:, 0]) ** 2 + (d[..., 1] - g[:, 1]) ** 2).astype(np.float64)
    mean_area = (float(area_g) + np.asarray(areas_d, dtype=np.float64)) / 2 + _EPS
    e = sq / variances / mean_area[:, None] / 2
    if vis_thresh is None:
        return np.exp(-e).mean(axis=1) if e.shape[1] else np.zeros(len(d))
    counted = d[..., 2] > vis_thresh
    n = counted.sum(axis=1)
    return np.where(n > 0, (np.exp(-e) * counted).sum(axis=1) / np.maximum(n, 1), 0.0)


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
    e /= -(_sigmas(sigmas) * 2) ** 2
    e /= np.asarray(areas_a, dtype=np.float64)[:, None, None] + _EPS
    e *= 0.5
    np.exp(e, out=e)
    e *= a_counted[:, None, :] & b_counted[None, :, :]
    n = a_counted.astype(np.float64) @ b_counted.T.astype(np.float64)   # joints counted per pair
    return np.where(n > 0, e.sum(axis=2) / np.maximum(n, 1), 0.0)


def oks_nms(kpts: np.ndarray, scores: np.ndarray, areas: np.ndarray, thresh: float,
            sigmas=None, vis_thresh=None) -> list[int]:
    """Greedy OKS-NMS: indices kept, best score first; a pose is suppressed when its OKS with
    a kept one is > thresh."""
    kpts = np.asarray(kpts)
    scores = np.asarray(scores)
    areas = np.asarray(areas, dtype=np.float64)
    order = scores.argsort()[::-1]  # default sort kind, as the official code: same tie order
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        oks = oks_iou(kpts[best], kpts[rest], areas[best], areas[rest], sigmas, vis_thresh)
        order = rest[oks <= thresh]
    return keep


def soft_oks_nms(kpts: np.ndarray, scores: np.ndarray, areas: np.ndarray, thresh: float,
                 sigmas=None, vis_thresh=None, max_dets: int = 20) -> list[int]:
    """Soft OKS-NMS (Gaussian rescoring s * exp(-oks^2 / thresh)), at most `max_dets` kept."""
    kpts = np.asarray(kpts)
    areas = np.asarray(areas, dtype=np.float64)
    order = np.asarray(scores).argsort()[::-1]
    remaining = np.asarray(scores, dtype=np.float64)[order]
    keep = []
    while order.size > 0 and len(keep) < max_dets:
        best, rest = order[0], order[1:]
        oks = oks_iou(kpts[best], kpts[rest], areas[best], areas[rest], sigmas, vis_thresh)
        remaining = remaining[1:] * np.exp(-oks ** 2 / thresh)
        resort = remaining.argsort()[::-1]
        order, remaining = rest[resort], remaining[resort]
        keep.append(int(best))
    return keep

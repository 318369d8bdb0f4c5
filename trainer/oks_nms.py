"""OKS-NMS and soft OKS-NMS over one image's people, with the official HRNet `oks_iou`, as the
official validation rescoring uses them (engines.pose.oks has the N x M matrix the tracker uses)."""

from __future__ import annotations

import numpy as np

from engines.pose.oks import sigmas_or_coco

__all__ = ["oks_iou", "oks_nms", "soft_oks_nms"]

_EPS = np.spacing(1)


def oks_iou(kpts_g: np.ndarray, kpts_d: np.ndarray, area_g: float, areas_d: np.ndarray,
            sigmas=None, vis_thresh=None) -> np.ndarray:
    """OKS (K,) float64 of one pose (J,3) against K poses (K,J,3), official semantics: the
    area is the mean of the two areas; with `vis_thresh`, only joints whose *detection* score
    exceeds it count (the official `list(vg > t) and list(vd > t)` evaluates to the second list)."""
    g = np.asarray(kpts_g).reshape(-1, 3)
    d = np.asarray(kpts_d).reshape(-1, g.shape[0], 3)
    variances = (sigmas_or_coco(sigmas) * 2) ** 2
    sq = ((d[..., 0] - g[:, 0]) ** 2 + (d[..., 1] - g[:, 1]) ** 2).astype(np.float64)
    mean_area = (float(area_g) + np.asarray(areas_d, dtype=np.float64)) / 2 + _EPS
    e = sq / variances / mean_area[:, None] / 2
    if vis_thresh is None:
        return np.exp(-e).mean(axis=1) if e.shape[1] else np.zeros(len(d))
    counted = d[..., 2] > vis_thresh
    n = counted.sum(axis=1)
    return np.where(n > 0, (np.exp(-e) * counted).sum(axis=1) / np.maximum(n, 1), 0.0)


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

"""COCO AP/AR with pycocotools, for keypoints (OKS) and boxes (IoU): the trainer's validation and
`python -m engines parity` score with it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

__all__ = ["STAT_NAMES", "coco_keypoint_ap", "coco_ap"]

STAT_NAMES = ("AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)")


def coco_keypoint_ap(ground_truth: str | Path | dict, results: list[dict],
                     sigmas: np.ndarray | None = None) -> dict:
    """COCO keypoint AP/AR (pycocotools) of `results` against a COCO keypoints file (or its dict);
    all zeros when there are no results."""
    return dict(zip(STAT_NAMES, coco_ap(ground_truth, results, "keypoints", sigmas)))


def coco_ap(ground_truth: str | Path | dict, results: list[dict], iou_type: str,
            sigmas: np.ndarray | None = None) -> list[float]:
    """pycocotools' summary numbers (`COCOeval.stats`: 10 for keypoints, 12 for bbox) of
    `results` against a COCO file or its dict; zeros when there are no results."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return [0.0] * (10 if iou_type == "keypoints" else 12)
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        if isinstance(ground_truth, dict):
            gt = COCO()
            gt.dataset = ground_truth
            gt.createIndex()
        else:
            gt = COCO(str(ground_truth))
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iou_type)
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        ev.params.imgIds = sorted({r["image_id"] for r in results} | set(gt.getImgIds()))
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]

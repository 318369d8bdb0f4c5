"""One detection per person: the rules that drop a frame's detections whose pose is someone
else's, run on the detections before association.

Box NMS cannot tell two boxes on one person from two people one behind the other, and the pose
network, given a box on part of someone or a second box around them, draws that person again.
Two rules look at the poses instead, in turn, on one matrix of box overlaps:
- contested boxes (`uncontested`): a box that covers a better-scoring one by more than the box
  NMS of most detectors allows stays only when its pose is someone else's;
- duplicate poses (`unduplicated`): poses that are one person are reduced to the one whose box
  fits its pose best.

Pure functions of boxes (N,5) xyxy + score, keypoints (N,J,3), the schema's OKS sigmas and the
tracker's settings; they return the rows kept, in their order.
"""

from __future__ import annotations

import numpy as np

from engines.common.boxes import box_iou, keypoint_extent
from engines.detectors.nms import nms
from engines.pose.oks import oks_matrix, oks_pairs

__all__ = ["one_detection_per_person", "uncontested", "unduplicated"]

CONTESTED_IOU = 0.5   # box NMS of most detectors: a box over a better one by more is contested
NESTED = 0.9          # a box this much inside another (share of its area) ...
NESTED_AREA = 0.6     # ... and at most this share of its size ...
NESTED_OKS = 0.4      # ... is the same person's above this OKS


def one_detection_per_person(boxes: np.ndarray, keypoints: np.ndarray, sigmas: np.ndarray, *,
                             contested_oks: float, duplicate_oks: float, joint_score_thresh: float) -> np.ndarray:
    """Rows of the detections left by the contested rule, then the duplicate rule (each off at 1)."""
    kept = np.arange(len(boxes))
    if contested_oks >= 1 and duplicate_oks >= 1:
        return kept
    overlap = box_iou(boxes[:, :4], boxes[:, :4])
    if contested_oks < 1:
        kept = np.flatnonzero(uncontested(boxes, keypoints, overlap, sigmas, contested_oks, joint_score_thresh))
        overlap = overlap[np.ix_(kept, kept)]
    if duplicate_oks < 1:
        kept = kept[unduplicated(boxes[kept], keypoints[kept], overlap, sigmas, duplicate_oks, joint_score_thresh)]
    return kept


def uncontested(boxes: np.ndarray, keypoints: np.ndarray, overlap: np.ndarray, sigmas: np.ndarray,
                contested_oks: float, joint_score_thresh: float) -> np.ndarray:
    """(N,) bool: the detections box NMS at IoU `CONTESTED_IOU` keeps, and those it would remove
    (they cover a better-scoring box) whose pose is someone else's: OKS at most `contested_oks`
    with every pose NMS keeps. In crowds the person behind another often has such a box; NMS
    alone cannot tell it from a second box on the front person (the bundled detector runs its
    NMS at 0.7 for this). `overlap` is the (N,N) box IoU."""
    if not (np.triu(overlap, k=1) > CONTESTED_IOU).any():
        return np.ones(len(boxes), bool)   # most frames: nothing to contest, no NMS loop
    firm = np.zeros(len(boxes), bool)
    firm[nms(boxes[:, :4], boxes[:, 4], CONTESTED_IOU)] = True
    if firm.all():
        return firm
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    oks = oks_matrix(keypoints[~firm], keypoints[firm], areas[~firm], sigmas, joint_score_thresh)
    keep = firm.copy()
    keep[np.flatnonzero(~firm)[oks.max(axis=1) <= contested_oks]] = True
    return keep


def unduplicated(boxes: np.ndarray, keypoints: np.ndarray, overlap: np.ndarray, sigmas: np.ndarray,
                 duplicate_oks: float, joint_score_thresh: float) -> np.ndarray:
    """(N,) bool: of the poses that are one person (OKS above `duplicate_oks`), the one whose box
    fits its pose best (IoU with the pose's extent). In crowds two boxes often lead the pose
    network to the same front person; the copy would start a second track on that person or pull
    the hidden person's track onto them. A box that lies almost wholly inside a much larger other
    (`NESTED`, `NESTED_AREA`) needs only OKS above `NESTED_OKS` (or `duplicate_oks`, if lower): a
    weak box on part of someone (their legs) makes the network draw all of them again, a little
    shifted, and that copy scores a lower OKS. `overlap` is the (N,N) box IoU."""
    keep = np.ones(len(boxes), bool)
    if len(boxes) < 2:
        return keep
    extent, _ = keypoint_extent(keypoints, joint_score_thresh)
    fit = np.diag(box_iou(boxes[:, :4], extent))
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    # one person's two poses come from overlapping boxes: OKS only for those pairs
    i, j = np.nonzero(np.triu(overlap > 0, k=1))
    oks = np.zeros((len(boxes), len(boxes)))
    oks[i, j] = oks_pairs(keypoints[i], keypoints[j], areas[i], sigmas, joint_score_thresh)
    oks[j, i] = oks_pairs(keypoints[j], keypoints[i], areas[j], sigmas, joint_score_thresh)
    # share of each row's box inside each column's box, from IoU: intersection = IoU * (a + b - intersection)
    inside = overlap * (areas[:, None] + areas[None, :]) / (1 + overlap) / np.maximum(areas[:, None], 1e-9)
    # a part of the other's box: inside it and clearly smaller (two people crossing have like boxes)
    nested = (inside > NESTED) & (areas[:, None] < NESTED_AREA * areas[None, :])
    nested |= nested.T
    limit = np.where(nested, min(NESTED_OKS, duplicate_oks), duplicate_oks)
    for i in np.argsort(-fit):
        if not keep[i]:
            continue
        dup = (oks[i] > limit[i]) & keep
        dup[i] = False
        keep[dup] = False
    return keep

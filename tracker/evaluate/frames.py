"""Frames as the official PoseTrack evaluations see them, built from PoseTrack files.

Rules taken from poseval (py/eval_helpers.py, py/convert.py):
- 15 joints in poseval's order (`POSETRACK17_JOINTS`: right_ankle .. left_wrist, head_bottom,
  nose, head_top); the ears are dropped; a joint exists unless stored as (0, 0, 0);
- prediction and ground-truth frames are paired by position in the file, and their counts must agree;
- only frames whose ground truth lists at least one person are evaluated (people without any
  annotated joint still count as people there);
- in frames with ignore regions, joints strictly inside any region are removed from ground truth
  and predictions, then people left with no joints are removed;
- a predicted joint without a score gets poseval's MIN_SCORE (-9999);
- the head size of a ground-truth person is 0.6 x the diagonal of its head box.

The PoseTrack21 evaluation (HOTA, `hota.py`) applies the same joint, pairing, ignore-region and
head-size rules but scores every frame marked `is_labeled` instead (`prepare_labelled_frames`).

Guesses, where poseval has no rule or would crash:
- inside-ness uses the even-odd rule with points on an edge counted outside (shapely's
  `contains` on simple polygons); regions with fewer than 3 vertices contain nothing;
- a ground-truth person without a head box in an evaluated frame is an error naming the file;
- duplicate track ids within one frame are an error (poseval's MOT step assumes unique ids).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.errors import UserError
from engines.formats.posetrack import POSETRACK17_TO_18, PoseTrackFrame, PoseTrackSequence, joints_present

__all__ = ["EvalFrame", "prepare_sequence", "prepare_labelled_frames", "points_in_polygon", "NUM_EVAL_JOINTS",
           "MIN_SCORE"]

NUM_EVAL_JOINTS = 15
MIN_SCORE = -9999.0


@dataclass
class EvalFrame:
    gt_xy: np.ndarray        # (G,15,2)
    gt_has: np.ndarray       # (G,15) bool
    gt_head: np.ndarray      # (G,) head size in pixels
    gt_ids: np.ndarray       # (G,)
    pr_xy: np.ndarray        # (P,15,2)
    pr_has: np.ndarray       # (P,15) bool
    pr_score: np.ndarray     # (P,15)
    pr_ids: np.ndarray       # (P,)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool: strictly inside `polygon` (K,2) by the even-odd rule; points on an edge are outside."""
    if len(polygon) < 3 or len(points) == 0:
        return np.zeros(len(points), bool)
    a = polygon[None, :, :].astype(np.float64)
    b = np.roll(polygon, -1, axis=0)[None, :, :].astype(np.float64)
    p = points[:, None, :].astype(np.float64)
    ax, ay, bx, by, px, py = a[..., 0], a[..., 1], b[..., 0], b[..., 1], p[..., 0], p[..., 1]
    crosses = (ay > py) != (by > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = ax + (py - ay) * (bx - ax) / (by - ay)
    inside = (crosses & (px < x_at)).sum(axis=1) % 2 == 1
    cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    on_edge = ((cross == 0) & (px >= np.minimum(ax, bx)) & (px <= np.maximum(ax, bx))
               & (py >= np.minimum(ay, by)) & (py <= np.maximum(ay, by))).any(axis=1)
    return inside & ~on_edge


def _remove_ignored(xy: np.ndarray, has: np.ndarray, polygons: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Drop joints inside the regions; return the new `has` and which people still have a joint."""
    if len(xy) == 0:
        return has, np.zeros(0, bool)
    flat = xy.reshape(-1, 2)
    ignored = np.zeros(len(flat), bool)
    for poly in polygons:
        ignored |= points_in_polygon(flat, poly)
    has = has & ~ignored.reshape(has.shape)
    return has, has.any(axis=1)


def _check_unique_ids(ids: np.ndarray, source: str, frame: int) -> None:
    if len(np.unique(ids)) != len(ids):
        raise UserError(f"{source}: frame {frame} has duplicate track ids {sorted(ids.tolist())}")


def _eval_frame(g: PoseTrackFrame, p: PoseTrackFrame, index: int, gt_source: str, pred_source: str) -> EvalFrame:
    """One ground-truth frame and its prediction with ignore regions applied, in poseval's joint order."""
    _check_unique_ids(p.track_ids, pred_source, index)
    _check_unique_ids(g.track_ids, gt_source, index)
    gk, pk = g.keypoints[:, POSETRACK17_TO_18], p.keypoints[:, POSETRACK17_TO_18]
    gt_has, pr_has = joints_present(gk), joints_present(pk)
    gt_keep, pr_keep = np.ones(g.num_people, bool), np.ones(p.num_people, bool)
    if g.ignore_regions:
        gt_has, gt_keep = _remove_ignored(gk[:, :, :2], gt_has, g.ignore_regions)
        pr_has, pr_keep = _remove_ignored(pk[:, :, :2], pr_has, g.ignore_regions)
    heads = g.head_boxes[gt_keep]
    if not np.all(np.isfinite(heads)):
        raise UserError(f"{gt_source}: frame {index} has a person without a head box (bbox_head)")
    score = p.scores[:, POSETRACK17_TO_18]
    return EvalFrame(
        gt_xy=gk[gt_keep, :, :2].astype(np.float64), gt_has=gt_has[gt_keep],
        gt_head=0.6 * np.hypot(heads[:, 2] - heads[:, 0], heads[:, 3] - heads[:, 1]),
        gt_ids=g.track_ids[gt_keep],
        pr_xy=pk[pr_keep, :, :2].astype(np.float64), pr_has=pr_has[pr_keep],
        pr_score=np.where(np.isnan(score), MIN_SCORE, score)[pr_keep].astype(np.float64),
        pr_ids=p.track_ids[pr_keep])


def _paired_frames(gt: PoseTrackSequence, pred: PoseTrackSequence, gt_source: str, pred_source: str):
    if len(gt.frames) != len(pred.frames):
        raise UserError(f"{pred_source}: {len(pred.frames)} frames but the ground truth "
                        f"{gt_source} has {len(gt.frames)} (frames are paired by position)")
    return enumerate(zip(gt.frames, pred.frames))


def prepare_sequence(gt: PoseTrackSequence, pred: PoseTrackSequence, gt_source: str,
                     pred_source: str) -> list[EvalFrame]:
    """The frames poseval evaluates (ground truth lists at least one person), in order."""
    return [_eval_frame(g, p, i, gt_source, pred_source)
            for i, (g, p) in _paired_frames(gt, pred, gt_source, pred_source) if g.num_people > 0]


def prepare_labelled_frames(gt: PoseTrackSequence, pred: PoseTrackSequence, gt_source: str,
                            pred_source: str) -> list[EvalFrame]:
    """The frames the PoseTrack21 evaluation (HOTA) scores: every frame marked `is_labeled`, people or not."""
    return [_eval_frame(g, p, i, gt_source, pred_source)
            for i, (g, p) in _paired_frames(gt, pred, gt_source, pred_source) if g.is_labeled]

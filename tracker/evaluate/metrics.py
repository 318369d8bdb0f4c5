"""PoseTrack metrics with poseval's semantics: per-joint AP (mAP) and CLEAR-MOT (MOTA, MOTP), plus IDF1.

Per evaluated frame (poseval's `assignGTmulti`):
- dist[p, g, j] = |pred - gt| / head size of g where both have joint j, else infinity;
  a joint matches when dist <= 0.5 (PCKh@0.5);
- pck[p, g] = matched joints / annotated joints of g; each prediction keeps only its best ground
  truth (first on ties), then each ground truth takes the prediction with the highest remaining pck
  (first on ties, none if 0); a prediction so chosen labels its joints by `match`, every other
  prediction's joints are false positives. Each predicted joint contributes (score, label) to its
  joint's list; annotated ground-truth joints count as positives.
- AP per joint: predictions ranked by score (numpy's default argsort, reversed, as poseval does),
  precision/recall, VOC area under the monotone precision envelope, x100. As in poseval's
  `computeMetrics` (AP starts at 0 and is only computed when the joint has predictions):
  no predictions of a joint -> 0, whether or not the ground truth has it (so a joint absent
  from both counts as 0 in the Total); predictions but no ground truth -> NaN (poseval's recall
  divides 0 by 0 there). Total = mean of the non-NaN joints; a group (Head, Shou, ...) is the
  plain mean of its joints (NaN if one is NaN), as poseval prints it.
- MOT per joint: ground-truth and predicted people that have the joint, with distances kept only
  where matched; a frame without ground truth or without predictions is scored, as in poseval, as
  one fake object and one fake hypothesis that cannot match (one miss and one false positive).
  The accumulator follows py-motmetrics: keep last frame's pairs that still match, then an optimal
  assignment maximising the number of matches, then minimal distance; a switch is a ground-truth
  id matched to another hypothesis than the last time. Each sequence starts fresh and its last
  evaluated frame is left out (poseval's `imgidxs[:-1]`). Counts are summed over sequences per joint,
  MOTA = 100 (1 - (misses + switches + false positives) / objects), MOTP = 100 (1 - sum dist / matches),
  precision = matches / (matches + false positives), recall = matches / objects, as poseval's
  `computeMetrics`: a joint without objects has MOTA and recall NaN, one without matches MOTP 0,
  one without matches or false positives precision NaN; Total = mean of the non-NaN joints (so a
  joint absent from ground truth and predictions is left out of MOTA but counts as 0 in MOTP).
  Checked against py-motmetrics 1.4.0 on random sequences: the same misses, switches, false
  positives, objects and matches. "sum dist" is over matched pairs, as poseval's `events['D'].sum()`
  was with the motmetrics of its time (newer motmetrics also logs RAW distance events, which would
  inflate that sum).
- IDF1 (not in poseval; our addition): per sequence and joint, ground-truth and predicted track ids
  are paired one-to-one to maximise the frames in which they match (same frames and matches as
  MOT, fake entries not counted); IDF1 = 2 IDTP / (ground-truth joints + predicted joints).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from tracker.evaluate.frames import NUM_EVAL_JOINTS, EvalFrame

__all__ = ["MotAccumulator", "FrameAssignment", "assign_frame", "average_precision", "SequenceCounts",
           "count_sequence", "DIST_THRESH", "JOINT_GROUPS"]

DIST_THRESH = 0.5
# poseval joint indices per printed group (right_ankle=0 .. left_wrist=11, neck=12, nose=13, head_top=14)
JOINT_GROUPS = {
    "Head": [14, 12, 13], "Shou": [8, 9], "Elb": [7, 10], "Wri": [6, 11],
    "Hip": [2, 3], "Knee": [1, 4], "Ankl": [0, 5],
}
_LARGE = 1e6


@dataclass
class FrameAssignment:
    scores: list[np.ndarray]     # per joint: scores of this frame's predicted joints
    labels: list[np.ndarray]     # per joint: 1 where that predicted joint is a true positive
    num_gt: np.ndarray           # (15,) annotated ground-truth joints
    mot: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per joint: gt ids, pred ids, dist (G_j,P_j), NaN = no match
    fake: bool                   # poseval's stand-in entry (no GT or no predictions)


def assign_frame(f: EvalFrame) -> FrameAssignment:
    n_pr, n_gt = len(f.pr_ids), len(f.gt_ids)
    num_gt = f.gt_has.sum(axis=0).astype(np.float64)
    if n_pr == 0 or n_gt == 0:
        # every prediction is a false positive; MOT gets poseval's fake object/hypothesis pair
        scores = [f.pr_score[f.pr_has[:, j], j] for j in range(NUM_EVAL_JOINTS)]
        labels = [np.zeros(len(s), np.int8) for s in scores]
        fake = (np.zeros(1, np.int64), np.zeros(1, np.int64), np.full((1, 1), np.nan))
        return FrameAssignment(scores, labels, num_gt, [fake] * NUM_EVAL_JOINTS, True)

    both = f.pr_has[:, None, :] & f.gt_has[None, :, :]                          # (P,G,15)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.linalg.norm(f.pr_xy[:, None] - f.gt_xy[None], axis=-1) / f.gt_head[None, :, None]
    dist = np.where(both, dist, np.inf)
    match = dist <= DIST_THRESH
    n_gt_joints = f.gt_has.sum(axis=1)
    pck = match.sum(axis=2).astype(np.float64)
    pck = np.where(n_gt_joints[None, :] > 0, pck / np.maximum(n_gt_joints, 1)[None, :], pck)
    best_gt = np.argmax(pck, axis=1)
    pck = np.where(np.arange(n_gt)[None, :] == best_gt[:, None], pck, 0.0)
    pr_for_gt = np.argmax(pck, axis=0)
    pr_for_gt[pck.max(axis=0) == 0] = -1
    label_matrix = np.zeros((n_pr, NUM_EVAL_JOINTS), bool)
    chosen = pr_for_gt >= 0
    label_matrix[pr_for_gt[chosen]] = match[pr_for_gt[chosen], np.flatnonzero(chosen)]

    scores, labels, mot = [], [], []
    for j in range(NUM_EVAL_JOINTS):
        has_pr = f.pr_has[:, j]
        scores.append(f.pr_score[has_pr, j])
        labels.append(label_matrix[has_pr, j].astype(np.int8))
        has_gt = f.gt_has[:, j]
        d = dist[np.ix_(has_pr, has_gt, [j])][:, :, 0].T
        m = match[np.ix_(has_pr, has_gt, [j])][:, :, 0].T
        mot.append((f.gt_ids[has_gt], f.pr_ids[has_pr], np.where(m, d, np.nan)))
    return FrameAssignment(scores, labels, num_gt, mot, False)


def average_precision(scores: np.ndarray, labels: np.ndarray, num_positives: float) -> float:
    """VOC-style AP x100 of ranked predictions (poseval's computeRPC + VOCap); 0 without predictions."""
    if len(scores) == 0:
        return 0.0
    if num_positives == 0:
        return float("nan")
    order = np.asarray(scores).argsort()[::-1]
    tp = np.cumsum(np.asarray(labels)[order] == 1)
    recall = tp / num_positives
    precision = tp / np.arange(1, len(order) + 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]) * 100)


class MotAccumulator:
    """CLEAR-MOT event counts for one joint over one sequence (py-motmetrics' matching rules)."""

    def __init__(self):
        self.last_match: dict[int, int] = {}
        self.misses = self.switches = self.false_positives = self.objects = self.matches = 0
        self.sum_dist = 0.0

    def update(self, gt_ids: np.ndarray, pr_ids: np.ndarray, dist: np.ndarray) -> np.ndarray:
        """Add one frame; dist (G,P) with NaN = cannot match. Returns the matched (gt row, pred row) pairs."""
        gt_ids, pr_ids = [int(i) for i in gt_ids], [int(i) for i in pr_ids]
        dist = np.array(dist, np.float64).reshape(len(gt_ids), len(pr_ids))
        self.objects += len(gt_ids)
        pairs = []
        column_of = {h: c for c, h in enumerate(pr_ids)}
        for r, o in enumerate(gt_ids):  # 1. keep last frame's correspondences that still match
            c = column_of.get(self.last_match.get(o, None), None)
            if c is not None and np.isfinite(dist[r, c]):
                pairs.append((r, c))
                self.sum_dist += dist[r, c]
                dist[r, :] = np.nan
                dist[:, c] = np.nan
        finite = np.isfinite(dist)
        if finite.any():  # 2. optimal assignment of the rest: most matches first, then least distance
            rows, cols = linear_sum_assignment(np.where(finite, dist, _LARGE))
            for r, c in zip(rows, cols):
                if not finite[r, c]:
                    continue
                o, h = gt_ids[r], pr_ids[c]
                if o in self.last_match and self.last_match[o] != h:
                    self.switches += 1
                self.last_match[o] = h
                self.sum_dist += dist[r, c]
                pairs.append((r, c))
        self.matches += len(pairs)
        self.misses += len(gt_ids) - len(pairs)
        self.false_positives += len(pr_ids) - len(pairs)
        return np.array(pairs, np.int64).reshape(-1, 2)

    @property
    def detections(self) -> int:
        """Matched objects, switches included (motmetrics' num_detections)."""
        return self.matches


@dataclass
class SequenceCounts:
    """Per-joint totals of one sequence (arrays of 15)."""

    misses: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS))
    switches: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS))
    false_positives: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS))
    objects: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS))
    detections: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS))
    sum_dist: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS))
    id_tp: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS))
    id_gt: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS))
    id_pr: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS))

    def __iadd__(self, other: "SequenceCounts") -> "SequenceCounts":
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


def _id_true_positives(frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[int, int, int]:
    """IDTP, ground-truth count and prediction count of one joint over a sequence's frames."""
    gt_all = np.unique(np.concatenate([g for g, _, _ in frames] + [np.zeros(0, np.int64)]))
    pr_all = np.unique(np.concatenate([p for _, p, _ in frames] + [np.zeros(0, np.int64)]))
    together = np.zeros((len(gt_all), len(pr_all)))
    n_gt = n_pr = 0
    for g, p, d in frames:
        n_gt += len(g)
        n_pr += len(p)
        if len(g) and len(p):
            gi, pi = np.searchsorted(gt_all, g), np.searchsorted(pr_all, p)
            together[np.ix_(gi, pi)] += np.isfinite(d)
    if together.size == 0:
        return 0, n_gt, n_pr
    rows, cols = linear_sum_assignment(-together)
    return int(together[rows, cols].sum()), n_gt, n_pr


def count_sequence(assignments: list[FrameAssignment]) -> SequenceCounts:
    """MOT and identity counts of one sequence; its last evaluated frame is left out, as in poseval."""
    counts = SequenceCounts()
    frames = assignments[:-1]
    for j in range(NUM_EVAL_JOINTS):
        acc = MotAccumulator()
        for a in frames:
            acc.update(*a.mot[j])
        counts.misses[j], counts.switches[j] = acc.misses, acc.switches
        counts.false_positives[j], counts.objects[j] = acc.false_positives, acc.objects
        counts.detections[j], counts.sum_dist[j] = acc.detections, acc.sum_dist
        counts.id_tp[j], counts.id_gt[j], counts.id_pr[j] = _id_true_positives(
            [a.mot[j] for a in frames if not a.fake])
    return counts

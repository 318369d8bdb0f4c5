"""HOTA on keypoints (Luiten et al., IJCV 2020), defined as the PoseTrack21 benchmark defines it.

Why this definition: it is the one pose-tracking papers publish HOTA with (PoseTrack21), so our
numbers compare with theirs, and it scores the same joints with the same head-normalised distance
as poseval's mAP and MOTA beside it, rather than a whole-person similarity such as OKS.

What PoseTrack21's evaluation (anDoer/PoseTrack21, eval/posetrack21: `datasets/posetrack.py` and
`metrics/hota_pose.py`, TrackEval's HOTA adapted to poses) does, and this module does too:
- Every joint is its own tracking problem: HOTA is computed per joint (the 15 poseval joints),
  with no whole-person similarity (no OKS): a person is only the carrier of its id.
- Frames: those whose ground truth is marked `is_labeled` (`frames.prepare_labelled_frames`, with
  poseval's ignore regions); a joint exists when, beyond poseval's rule, x > 0 and y > 0.
- Similarity of a predicted and a ground-truth joint: d = distance / head size of the ground-truth
  person, sim = max(0, 1 - d / 0.5001), 0 where either lacks the joint: 1 for a perfect joint,
  0 just past PCKh's 0.5 head sizes (a match at the lowest alpha, 0.05, needs d <= 0.475).
- Per frame and joint, a Hungarian assignment maximising the summed similarity (not TrackEval's
  alignment-weighted score: PoseTrack21 matches on similarity alone); at each alpha in 0.05, 0.10,
  .., 0.95 the pairs with sim >= alpha are true positives (TP), other ground-truth joints misses
  (FN), other predicted joints false positives (FP).
- DetA = TP / (TP + FN + FP). AssA = mean over TPs of A(g, p) = TPA / (TPA + FNA + FPA), where
  TPA counts the frames in which ids g and p match on that joint, FNA the other frames where g
  has the joint, FPA the other frames where p has it. HOTA = sqrt(DetA * AssA). LocA = mean sim
  over TPs (1 where there is no TP). Reported values are means over the 19 alphas, x100.
- Over sequences: TP, FN, FP add up; AssA and LocA are averaged weighted by each sequence's TP.
- Total: DetA from the counts of all joints pooled; AssA (and LocA) as each sequence's plain mean
  over its 15 joints, weighted by that sequence's total TP; HOTA = sqrt(DetA * AssA) per alpha.
  A joint absent from ground truth and predictions has AssA 0 and lowers that mean.

One deliberate difference: where a frame has no ground-truth people or no predictions, PoseTrack21's
code adds the whole sequence's joint count as FP (or FN) for that frame, a slip from TrackEval
(which adds the frame's count), so one empty frame in a long sequence would wipe DetA out. Here that
frame adds its own joints, as the HOTA definition and TrackEval do. Whole-person groups (Head, Shou,
..) are, as for mAP, the plain mean of their joints' values (PoseTrack21 prints joints only).
Written here, not taken from TrackEval: it is not a dependency and scores whole objects, not joints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from tracker.evaluate.frames import NUM_EVAL_JOINTS, EvalFrame

__all__ = ["ALPHAS", "HotaCounts", "hota_sequence", "keypoint_similarity"]

ALPHAS = np.arange(0.05, 0.99, 0.05)  # TrackEval's 19 localisation thresholds
_EPS = np.finfo(float).eps
_SIM_SLOPE = 0.5001  # PoseTrack21: sim reaches 0 just past the PCKh threshold of 0.5 head sizes


def _valid(xy: np.ndarray, has: np.ndarray) -> np.ndarray:
    """PoseTrack21's joint rule: present, and x > 0 and y > 0."""
    return has & (xy > 0).all(axis=-1)


def keypoint_similarity(f: EvalFrame) -> np.ndarray:
    """(G, P, 15) similarity in [0, 1] of each ground-truth and predicted person's joints."""
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.linalg.norm(f.gt_xy[:, None] - f.pr_xy[None], axis=-1) / f.gt_head[:, None, None]
        sim = np.nan_to_num(np.maximum(1 - dist / _SIM_SLOPE, 0), nan=0.0)  # a zero head size matches nothing
    both = _valid(f.gt_xy, f.gt_has)[:, None, :] & _valid(f.pr_xy, f.pr_has)[None, :, :]
    return np.where(both, sim, 0.0)


@dataclass
class HotaCounts:
    """Sums over sequences, per alpha (rows) and joint (columns); adding two combines them."""

    tp: np.ndarray = field(default_factory=lambda: np.zeros((len(ALPHAS), NUM_EVAL_JOINTS)))
    num_gt: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS))  # ground-truth joints
    num_pr: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS))  # predicted joints
    ass_tp: np.ndarray = field(default_factory=lambda: np.zeros((len(ALPHAS), NUM_EVAL_JOINTS)))  # AssA x TP
    loc_tp: np.ndarray = field(default_factory=lambda: np.zeros((len(ALPHAS), NUM_EVAL_JOINTS)))  # LocA x TP
    total_ass_tp: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHAS)))  # mean-joint AssA x TP
    total_loc_tp: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHAS)))

    def __iadd__(self, other: "HotaCounts") -> "HotaCounts":
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def per_joint(self) -> dict[str, np.ndarray]:
        """HOTA, DetA, AssA, LocA per joint, x100, averaged over alphas."""
        det = self.tp / np.maximum(1, self.num_gt + self.num_pr - self.tp)
        ass = self.ass_tp / np.maximum(1, self.tp)
        loc = np.maximum(1e-10, self.loc_tp) / np.maximum(1e-10, self.tp)
        return {"HOTA": 100 * np.sqrt(det * ass).mean(0), "DetA": 100 * det.mean(0),
                "AssA": 100 * ass.mean(0), "LocA": 100 * loc.mean(0)}

    def total(self) -> dict[str, float]:
        """PoseTrack21's Total column: pooled DetA, TP-weighted joint-mean AssA and LocA, x100."""
        tp = self.tp.sum(1)
        det = tp / np.maximum(1, self.num_gt.sum() + self.num_pr.sum() - tp)
        ass = self.total_ass_tp / np.maximum(1, tp)
        loc = np.maximum(1e-10, self.total_loc_tp) / np.maximum(1e-10, tp)
        return {"HOTA": float(100 * np.sqrt(det * ass).mean()), "DetA": float(100 * det.mean()),
                "AssA": float(100 * ass.mean()), "LocA": float(100 * loc.mean())}


def _matches(frames: list[EvalFrame], gt_ids: np.ndarray, pr_ids: np.ndarray) -> np.ndarray:
    """Hungarian matches of every frame and joint, (N, 4): gt id index, pred id index, joint, similarity."""
    found = [np.zeros((0, 4))]
    for f in frames:
        if len(f.gt_ids) == 0 or len(f.pr_ids) == 0:
            continue
        sim = keypoint_similarity(f)
        g_idx, p_idx = np.searchsorted(gt_ids, f.gt_ids), np.searchsorted(pr_ids, f.pr_ids)
        for j in np.flatnonzero(sim.max(axis=(0, 1)) > 0):
            rows, cols = linear_sum_assignment(-sim[:, :, j])
            s = sim[rows, cols, j]
            keep = s > 0
            found.append(np.stack([g_idx[rows[keep]], p_idx[cols[keep]], np.full(keep.sum(), j), s[keep]], axis=1))
    return np.concatenate(found)


def _id_joint_counts(people: list[tuple[np.ndarray, np.ndarray]], ids: np.ndarray) -> np.ndarray:
    """(len(ids), 15): in how many frames each id has each joint; people = per frame (ids, valid joints)."""
    counts = np.zeros((len(ids), NUM_EVAL_JOINTS))
    for frame_ids, valid in people:
        np.add.at(counts, np.searchsorted(ids, frame_ids), valid)
    return counts


def hota_sequence(frames: list[EvalFrame]) -> HotaCounts:
    """HOTA sums of one sequence's labelled frames (ids are local to the sequence)."""
    out = HotaCounts()
    gt_ids = np.unique(np.concatenate([f.gt_ids for f in frames] + [np.zeros(0, np.int64)]))
    pr_ids = np.unique(np.concatenate([f.pr_ids for f in frames] + [np.zeros(0, np.int64)]))
    gt_count = _id_joint_counts([(f.gt_ids, _valid(f.gt_xy, f.gt_has)) for f in frames], gt_ids)
    pr_count = _id_joint_counts([(f.pr_ids, _valid(f.pr_xy, f.pr_has)) for f in frames], pr_ids)
    out.num_gt, out.num_pr = gt_count.sum(0), pr_count.sum(0)
    found = _matches(frames, gt_ids, pr_ids)
    g, p, j, sim = found[:, 0].astype(np.int64), found[:, 1].astype(np.int64), found[:, 2].astype(np.int64), found[:, 3]
    n_pr = max(len(pr_ids), 1)
    for a, alpha in enumerate(ALPHAS):
        ok = sim >= alpha - _EPS
        tp = np.bincount(j[ok], minlength=NUM_EVAL_JOINTS).astype(np.float64)
        # TPA of each (gt id, pred id, joint): the frames in which that pair matches on that joint
        triple, tpa = np.unique((g[ok] * n_pr + p[ok]) * NUM_EVAL_JOINTS + j[ok], return_counts=True)
        pair, tj = np.divmod(triple, NUM_EVAL_JOINTS)
        tg, tq = np.divmod(pair, n_pr)
        pair_ass = tpa / np.maximum(1, gt_count[tg, tj] + pr_count[tq, tj] - tpa)
        ass = np.bincount(tj, tpa * pair_ass, minlength=NUM_EVAL_JOINTS) / np.maximum(1, tp)
        loc = np.maximum(1e-10, np.bincount(j[ok], sim[ok], minlength=NUM_EVAL_JOINTS)) / np.maximum(1e-10, tp)
        out.tp[a] = tp
        out.ass_tp[a], out.loc_tp[a] = ass * tp, loc * tp
        out.total_ass_tp[a], out.total_loc_tp[a] = ass.mean() * tp.sum(), loc.mean() * tp.sum()
    return out

"""Evaluate a folder of predicted PoseTrack files against a folder of ground truth.

mAP, MOTA, MOTP follow poseval (frames.py, metrics.py); HOTA, DetA, AssA, LocA follow PoseTrack21
(hota.py); IDF1, and the joints' acceleration error and lag (smoothness.py), are our additions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.errors import UserError
from engines.formats.posetrack import POSETRACK17_JOINTS, load_sequence
from tracker.evaluate.frames import NUM_EVAL_JOINTS, prepare_labelled_frames, prepare_sequence
from tracker.evaluate.hota import HotaCounts, hota_sequence
from tracker.evaluate.metrics import JOINT_GROUPS, SequenceCounts, assign_frame, average_precision, count_sequence
from tracker.evaluate.smoothness import Smoothness, smoothness_sequence

__all__ = ["EvaluationResult", "evaluate_folders", "evaluate_sequences"]

GROUP_NAMES = list(JOINT_GROUPS) + ["Total"]
HOTA_NAMES = ("HOTA", "DetA", "AssA", "LocA")


@dataclass
class EvaluationResult:
    ap: np.ndarray          # (15,) per joint, poseval order
    mota: np.ndarray        # (15,)
    motp: np.ndarray        # (15,)
    precision: np.ndarray   # (15,) MOT precision
    recall: np.ndarray      # (15,) MOT recall
    idf1: np.ndarray        # (15,)
    counts: SequenceCounts  # summed over sequences
    hota: HotaCounts        # PoseTrack21's HOTA sums over sequences
    smoothness: Smoothness  # acceleration error and lag sums over sequences
    num_sequences: int
    num_frames: int         # evaluated (labelled) frames

    @staticmethod
    def grouped(per_joint: np.ndarray, total: float | None = None) -> dict[str, float]:
        """Head .. Ankl as the plain mean of their joints; Total given, or the mean of non-NaN joints."""
        out = {name: float(per_joint[idx].mean()) for name, idx in JOINT_GROUPS.items()}
        if total is None:
            finite = per_joint[~np.isnan(per_joint)]
            total = float(finite.mean()) if finite.size else float("nan")
        out["Total"] = total
        return out

    def summary(self) -> dict:
        hota_joints, hota_total = self.hota.per_joint(), self.hota.total()
        return {
            "mAP": self.grouped(self.ap), "MOTA": self.grouped(self.mota), "MOTP": self.grouped(self.motp),
            "precision": self.grouped(self.precision), "recall": self.grouped(self.recall),
            "IDF1": self.grouped(self.idf1),
            **{key: self.grouped(hota_joints[key], hota_total[key]) for key in HOTA_NAMES},
            "id_switches": int(self.counts.switches.sum()),
            "accel_error": self.grouped(self.smoothness.acceleration_error()),
            "lag_frames": self.smoothness.lag(),
            "per_joint": {name: {"AP": float(self.ap[j]), "MOTA": float(self.mota[j]), "IDF1": float(self.idf1[j]),
                                 **{key: float(hota_joints[key][j]) for key in HOTA_NAMES}}
                          for j, name in enumerate(POSETRACK17_JOINTS)},
            "sequences": self.num_sequences, "frames": self.num_frames,
        }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def evaluate_sequences(pairs: list[tuple[str, object, str, object]]) -> EvaluationResult:
    """pairs: (gt source, gt PoseTrackSequence, pred source, pred PoseTrackSequence)."""
    scores = [[] for _ in range(NUM_EVAL_JOINTS)]
    labels = [[] for _ in range(NUM_EVAL_JOINTS)]
    num_gt = np.zeros(NUM_EVAL_JOINTS)
    totals = SequenceCounts()
    hota, smoothness = HotaCounts(), Smoothness()
    n_frames = 0
    for gt_source, gt, pred_source, pred in pairs:
        labelled = prepare_labelled_frames(gt, pred, gt_source, pred_source)
        hota += hota_sequence(labelled)
        smoothness += smoothness_sequence(labelled)
        assignments = [assign_frame(f) for f in prepare_sequence(gt, pred, gt_source, pred_source)]
        n_frames += len(assignments)
        for a in assignments:
            num_gt += a.num_gt
            for j in range(NUM_EVAL_JOINTS):
                scores[j].append(a.scores[j])
                labels[j].append(a.labels[j])
        totals += count_sequence(assignments)
    ap = np.array([average_precision(np.concatenate(scores[j] or [np.zeros(0)]),
                                     np.concatenate(labels[j] or [np.zeros(0)]), num_gt[j])
                   for j in range(NUM_EVAL_JOINTS)])
    c = totals
    mota = 100 * (1 - _ratio(c.misses + c.switches + c.false_positives, c.objects))
    motp = np.where(c.detections > 0, 100 * (1 - _ratio(c.sum_dist, c.detections)), 0.0)
    precision = 100 * _ratio(c.detections, c.false_positives + c.detections)
    recall = 100 * _ratio(c.detections, c.objects)
    idf1 = 100 * _ratio(2 * c.id_tp, c.id_gt + c.id_pr)
    return EvaluationResult(ap, mota, motp, precision, recall, idf1, c, hota, smoothness, len(pairs), n_frames)


def evaluate_folders(gt_dir: str | os.PathLike, pred_dir: str | os.PathLike) -> EvaluationResult:
    """Every `*.json` in gt_dir is a sequence; pred_dir must hold a file of the same name for each."""
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    for folder, what in ((gt_dir, "ground-truth"), (pred_dir, "prediction")):
        if not folder.is_dir():
            raise UserError(f"{what} folder {folder} does not exist")
    gt_files = sorted(gt_dir.glob("*.json"))
    if not gt_files:
        raise UserError(f"no *.json sequence files in {gt_dir}")
    missing = [p.name for p in gt_files if not (pred_dir / p.name).is_file()]
    if missing:
        raise UserError(f"{pred_dir} lacks predictions for {len(missing)} sequence(s): {', '.join(missing[:5])}")
    pairs = [(str(p), load_sequence(p), str(pred_dir / p.name), load_sequence(pred_dir / p.name)) for p in gt_files]
    return evaluate_sequences(pairs)

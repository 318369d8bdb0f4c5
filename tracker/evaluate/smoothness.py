"""How smooth and how late the predicted joints move against the ground truth: jitter as the
acceleration error, and lag as the time shift that best aligns the two.

Each ground-truth joint is followed through the labelled frames in which the nearest predicted
joint within poseval's matching distance (metrics.py) belongs to the same track as in the frame
before (an identity switch or a miss cuts the run). Frames are taken as one frame period apart,
so the figures mean what they say on densely labelled sequences (the synthetic videos label
every frame):
- acceleration error: the mean distance between the predicted and the true second differences,
  x(t+1) - 2x(t) + x(t-1), over every three frames in a row, in pixels per frame squared (0 for
  a prediction that moves exactly as the truth; jitter raises it);
- lag: the shift s, in frames, that minimises the mean squared distance between the prediction
  at t and the truth at t - s over all runs (a parabola through the best whole shift and its
  neighbours gives the fraction); positive when the prediction follows the truth late.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tracker.evaluate.frames import NUM_EVAL_JOINTS, EvalFrame
from tracker.evaluate.metrics import assign_frame

__all__ = ["Smoothness", "joint_runs", "smoothness_sequence", "MAX_LAG"]

MAX_LAG = 5   # frames each way


@dataclass
class Smoothness:
    """Sums over sequences: acceleration error per joint, and squared error per shift."""

    accel_sum: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS))
    accel_count: np.ndarray = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS))
    shift_sum: np.ndarray = field(default_factory=lambda: np.zeros(2 * MAX_LAG + 1))
    shift_count: np.ndarray = field(default_factory=lambda: np.zeros(2 * MAX_LAG + 1))

    def __iadd__(self, other: "Smoothness") -> "Smoothness":
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def acceleration_error(self) -> np.ndarray:
        """(15,) px / frame^2 per joint (NaN where no joint was followed for three frames)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.accel_sum / self.accel_count

    def lag(self) -> float:
        """Frames by which the prediction follows the truth (NaN without runs)."""
        if not self.shift_count.any():
            return float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            error = np.where(self.shift_count > 0, self.shift_sum / self.shift_count, np.inf)
        best = int(np.argmin(error))
        if 0 < best < len(error) - 1 and np.isfinite(error[best - 1:best + 2]).all():
            left, centre, right = error[best - 1:best + 2]
            curvature = left - 2 * centre + right
            fraction = 0.5 * (left - right) / curvature if curvature > 0 else 0.0
        else:
            fraction = 0.0
        return best - MAX_LAG + fraction


def joint_runs(frames: list[EvalFrame]) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(joint, true xy (T,2), predicted xy (T,2)) for every stretch of frames in a row in which a
    ground-truth joint and one predicted track's same joint are matched."""
    runs, open_runs = [], {}   # (gt id, joint) -> (pred id, frame, truth list, prediction list)
    for index, frame in enumerate(frames):
        matched = {}
        for j, (gt_ids, pr_ids, dist) in enumerate(assign_frame(frame).mot):
            if not len(gt_ids) or not len(pr_ids) or not np.isfinite(dist).any():
                continue
            gt_rows, pr_rows = np.flatnonzero(frame.gt_has[:, j]), np.flatnonzero(frame.pr_has[:, j])
            for r, row in enumerate(dist):
                if np.isfinite(row).any():
                    c = int(np.nanargmin(row))
                    matched[(int(gt_ids[r]), j)] = (int(pr_ids[c]), frame.gt_xy[gt_rows[r], j], frame.pr_xy[pr_rows[c], j])
        for key in list(open_runs):
            pred_id, last, truth, prediction = open_runs[key]
            if key not in matched or matched[key][0] != pred_id or last != index - 1:
                runs.append((key[1], np.array(truth), np.array(prediction)))
                del open_runs[key]
        for key, (pred_id, true_xy, pred_xy) in matched.items():
            if key in open_runs:
                open_runs[key][1] = index
                open_runs[key][2].append(true_xy)
                open_runs[key][3].append(pred_xy)
            else:
                open_runs[key] = [pred_id, index, [true_xy], [pred_xy]]
    runs += [(key[1], np.array(truth), np.array(prediction)) for key, (_, _, truth, prediction) in open_runs.items()]
    return runs


def smoothness_sequence(frames: list[EvalFrame]) -> Smoothness:
    """Acceleration error and lag sums of one sequence's labelled frames."""
    out = Smoothness()
    for joint, truth, prediction in joint_runs(frames):
        if len(truth) >= 3:
            error = np.diff(prediction, 2, axis=0) - np.diff(truth, 2, axis=0)
            out.accel_sum[joint] += np.linalg.norm(error, axis=1).sum()
            out.accel_count[joint] += len(error)
        for k, shift in enumerate(range(-MAX_LAG, MAX_LAG + 1)):
            if len(truth) > abs(shift):
                # prediction at t against the truth at t - shift
                moved_pred = prediction[shift:] if shift >= 0 else prediction[:shift]
                moved_truth = truth[:len(truth) - shift] if shift >= 0 else truth[-shift:]
                out.shift_sum[k] += ((moved_pred - moved_truth) ** 2).sum()
                out.shift_count[k] += len(moved_pred)
    return out

"""PoseTrack18 keypoints from tracked people: the head points PoseTrack has and COCO lacks.

A PoseTrack18-schema model already predicts head_bottom and head_top; a COCO-17 model predicts
eyes and ears instead, so the two head points are derived by this rule:

- E = mean of the confident eyes and ears (the head centre at eye level; the nose if none);
- S = midpoint of the shoulders;
- head_bottom = S + 0.45 (E - S)   (upper neck, a little under half-way from shoulders to eyes);
- head_top    = E + 0.45 (E - S)   (crown, as far above the eyes as the upper neck is below them);
- their score is the smallest score among the joints used; without a confident shoulder pair
  or head joint the point gets score 0 at (0, 0), i.e. it is left out.

The proportions come from average adult head/neck geometry (eyes about mid-head, head height
about equal to the eyes-to-shoulder-line distance); they are a documented guess, not a fit.
"""

from __future__ import annotations

import numpy as np

from engines.pose.schemas import COCO17, POSETRACK18

__all__ = ["to_posetrack18_keypoints"]

_NOSE, _LEYE, _REYE, _LEAR, _REAR, _LSH, _RSH = (COCO17.index(n) for n in (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder"))
_NECK_FRACTION = 0.45


def to_posetrack18_keypoints(kpts: np.ndarray, schema: str, min_score: float = 0.1) -> np.ndarray:
    """(N,17,3) keypoints in the PoseTrack18 joint order from a `coco17` or `posetrack18` model."""
    kpts = np.asarray(kpts, np.float32)
    if schema == POSETRACK18.name:
        return kpts.copy()
    if schema != COCO17.name:
        raise ValueError(f"cannot convert {schema!r} keypoints to PoseTrack18")
    out = kpts.copy()  # same order except joints 1 and 2 (eyes -> head_bottom, head_top)
    score = kpts[:, :, 2]
    head = kpts[:, [_LEYE, _REYE, _LEAR, _REAR], :]
    head_ok = head[:, :, 2] >= min_score
    n_head = head_ok.sum(axis=1)
    centre = np.where(n_head[:, None] > 0,
                      (head[:, :, :2] * head_ok[:, :, None]).sum(axis=1) / np.maximum(n_head, 1)[:, None],
                      kpts[:, _NOSE, :2])
    centre_score = np.where(n_head > 0, np.where(head_ok, head[:, :, 2], np.inf).min(axis=1), score[:, _NOSE])
    shoulders = kpts[:, [_LSH, _RSH], :2].mean(axis=1)
    shoulder_score = score[:, [_LSH, _RSH]].min(axis=1)
    up = centre - shoulders
    joint_score = np.minimum(centre_score, shoulder_score)
    usable = (joint_score >= min_score)[:, None]
    bottom = np.where(usable, shoulders + _NECK_FRACTION * up, 0.0)
    top = np.where(usable, centre + _NECK_FRACTION * up, 0.0)
    s = np.where(usable[:, 0], joint_score, 0.0)
    out[:, 1] = np.concatenate([bottom, s[:, None]], axis=1)
    out[:, 2] = np.concatenate([top, s[:, None]], axis=1)
    return out

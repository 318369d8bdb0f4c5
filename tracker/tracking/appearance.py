"""What a person looks like, for re-identification: the colours of the body parts the keypoints
outline, with no network.

Five parts, each pooled over the left and right side (a person who turns round swaps them):
torso (the diagonals of the shoulder-hip quadrilateral), upper arms, forearms, thighs and shins. A part is
sampled at fixed points along its bones and described by
the mean CIE Lab colour of those pixels; a part whose joints are not confidently seen is unknown
(NaN). Lab makes distances roughly perceptual; lightness counts half, as lighting changes it most.
"""

from __future__ import annotations

import cv2
import numpy as np

from engines.pose.schemas import get_schema

__all__ = ["PARTS", "AppearanceSampler", "appearance_distance", "blend_appearance"]

# part -> bones (pairs of joint names) sampled for it; both sides of a limb pool into one part
PARTS = {
    "torso": [("left_shoulder", "right_hip"), ("right_shoulder", "left_hip")],   # the diagonals: inside it
    "upper_arm": [("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow")],
    "forearm": [("left_elbow", "left_wrist"), ("right_elbow", "right_wrist")],
    "thigh": [("left_hip", "left_knee"), ("right_hip", "right_knee")],
    "shin": [("left_knee", "left_ankle"), ("right_knee", "right_ankle")],
}
_STEPS = np.linspace(0.2, 0.8, 5)          # where along a bone its pixels are read
_LAB_WEIGHT = np.array([0.5, 1.0, 1.0])    # lightness counts half


class AppearanceSampler:
    """Part colours (N, len(PARTS), 3) float32 Lab of people given as keypoints in a frame."""

    def __init__(self, schema: str, joint_thresh: float):
        names = get_schema(schema).joints
        self.usable = all(a in names and b in names for bones in PARTS.values() for a, b in bones)
        self.joint_thresh = joint_thresh
        if self.usable:
            self._bones = np.array([[names.index(a), names.index(b)] for bones in PARTS.values() for a, b in bones])
            self._part_of_bone = np.repeat(np.arange(len(PARTS)), [len(bones) for bones in PARTS.values()])

    def __call__(self, image: np.ndarray, keypoints: np.ndarray) -> np.ndarray | None:
        """None when the schema lacks the joints the parts need."""
        if not self.usable:
            return None
        n = len(keypoints)
        out = np.full((n, len(PARTS), 3), np.nan, np.float32)
        if n == 0:
            return out
        a, b = keypoints[:, self._bones[:, 0]], keypoints[:, self._bones[:, 1]]        # (N,B,3)
        bone_seen = (a[..., 2] >= self.joint_thresh) & (b[..., 2] >= self.joint_thresh)
        points = a[:, :, None, :2] + _STEPS[None, None, :, None] * (b - a)[:, :, None, :2]  # (N,B,S,2)
        h, w = image.shape[:2]
        xi = np.clip(np.round(points[..., 0]), 0, w - 1).astype(np.intp)
        yi = np.clip(np.round(points[..., 1]), 0, h - 1).astype(np.intp)
        inside = (points[..., 0] >= 0) & (points[..., 0] < w) & (points[..., 1] >= 0) & (points[..., 1] < h)
        lab = cv2.cvtColor(image[yi, xi].reshape(-1, 1, 3), cv2.COLOR_BGR2LAB).reshape(*xi.shape, 3)
        lab = lab.astype(np.float32) * [100 / 255, 1, 1] - [0, 128, 128]   # L in 0..100, a and b centred
        use = inside & bone_seen[..., None]                                   # (N,B,S)
        for part in range(len(PARTS)):
            bones = self._part_of_bone == part
            weight = use[:, bones].reshape(n, -1)
            count = weight.sum(axis=1)
            total = (lab[:, bones].reshape(n, -1, 3) * weight[..., None]).sum(axis=1)
            known = count >= len(_STEPS)    # at least one whole bone of the part
            out[known, part] = total[known] / count[known, None]
        return out


def appearance_distance(tracks: np.ndarray, people: np.ndarray, min_parts: int = 2) -> np.ndarray:
    """(T, N) mean weighted Lab distance over the parts known in both; inf where fewer than
    `min_parts` parts are known in both."""
    diff = (tracks[:, None] - people[None, :]) * _LAB_WEIGHT                 # (T,N,P,3)
    per_part = np.sqrt((diff ** 2).sum(axis=-1))                              # NaN where either is unknown
    known = np.isfinite(per_part)
    count = known.sum(axis=-1)
    mean = np.where(known, per_part, 0.0).sum(axis=-1) / np.maximum(count, 1)
    return np.where(count >= min_parts, mean, np.inf)


def blend_appearance(old: np.ndarray, new: np.ndarray, counts: np.ndarray, momentum: float) -> tuple[np.ndarray, np.ndarray]:
    """Running part colours: the mean of the first samples, then an exponential average with
    weight `momentum` on the newest; a part unknown on either side keeps the known one.
    old, new (T, P, 3); counts (T, P) samples so far. Returns (appearance, counts)."""
    seen = np.isfinite(new).all(axis=-1)
    counts = counts + seen
    rate = np.maximum(1.0 / np.maximum(counts, 1), momentum)[..., None]
    mixed = np.where(np.isfinite(old), old + rate * (new - old), new)
    return np.where(seen[..., None], mixed, old).astype(np.float32), counts

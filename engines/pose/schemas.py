"""Keypoint schemas: joint names, left/right flip pairs, skeleton edges and OKS sigmas.

Every index in this project (heatmap channels, keypoint rows, export columns) follows one of
these schemas. Indices are 0-based; skeleton edges are pairs of joint indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["KeypointSchema", "COCO17", "POSETRACK18", "MPII16", "SCHEMAS", "get_schema"]


@dataclass(frozen=True)
class KeypointSchema:
    name: str
    joints: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def sigmas_array(self) -> np.ndarray:
        return np.asarray(self.sigmas, dtype=np.float32)

    def index(self, joint: str) -> int:
        return self.joints.index(joint)

    def flip_permutation(self) -> np.ndarray:
        """Index array p such that joints[p] is the left/right mirrored order."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def __post_init__(self):
        n = len(self.joints)
        if len(self.sigmas) != n:
            raise ValueError(f"{self.name}: {len(self.sigmas)} sigmas for {n} joints")
        for a, b in self.flip_pairs + self.skeleton:
            if not (0 <= a < n and 0 <= b < n):
                raise ValueError(f"{self.name}: joint index out of range in pair ({a}, {b})")


_COCO_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
_LIMB_PAIRS = ((5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
# COCO's published skeleton, converted from 1-based to 0-based indices.
_COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)
# COCO keypoint evaluation sigmas (cocoapi), one per joint.
_COCO_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)

COCO17 = KeypointSchema(
    name="coco17",
    joints=_COCO_JOINTS,
    flip_pairs=((1, 2), (3, 4)) + _LIMB_PAIRS,
    skeleton=_COCO_SKELETON,
    sigmas=_COCO_SIGMAS,
)

# PoseTrack 2018: COCO order with the eyes replaced by head_bottom and head_top (not mirrored);
# the ears exist in the schema but are never annotated. The official files carry the COCO
# skeleton with the same indices, and the sigmas are COCO's, as mmpose uses them.
POSETRACK18 = KeypointSchema(
    name="posetrack18",
    joints=("nose", "head_bottom", "head_top") + _COCO_JOINTS[3:],
    flip_pairs=((3, 4),) + _LIMB_PAIRS,
    skeleton=_COCO_SKELETON,
    sigmas=_COCO_SIGMAS,
)

# MPII has no official OKS sigmas; each joint takes the COCO sigma of its nearest COCO
# counterpart (pelvis as hips, thorax and upper neck as shoulders, head top as an ear).
MPII16 = KeypointSchema(
    name="mpii16",
    joints=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "pelvis", "thorax", "upper_neck", "head_top",
        "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=(
        (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
        (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15),
    ),
    sigmas=(
        0.089, 0.087, 0.107, 0.107, 0.087, 0.089, 0.107, 0.079, 0.079, 0.035,
        0.062, 0.072, 0.079, 0.079, 0.072, 0.062,
    ),
)

SCHEMAS = {s.name: s for s in (COCO17, POSETRACK18, MPII16)}


def get_schema(name: str) -> KeypointSchema:
    try:
        return SCHEMAS[name]
    except KeyError:
        raise ValueError(f"unknown keypoint schema {name!r}; choose one of {', '.join(SCHEMAS)}") from None

"""Top-down training/validation sample: the official JointsDataset transform.

Training draws, in the official order: half-body crop (p PROB_HALF_BODY, when more than
NUM_JOINTS_HALF_BODY joints are labelled), scale s * clip(1 + N(0,1)*SF, 1-SF, 1+SF), rotation
clip(N(0,1)*RF, -2RF, 2RF) with p PROB_ROTATION, horizontal flip with p 0.5. Then the affine
crop (engines.pose.geometry), joints mapped into the crop, Gaussian targets (engines.pose.codec), and RGB
ImageNet normalisation. Randomness comes from the generator passed in, so a sample depends only
on (seed, epoch, index) and a resumed run sees the same augmentations as an uninterrupted one.

Limb guides (off unless DATASET.LIMB_GUIDE > 0, not official): a left/right joint whose side can only
be told from far away (an ankle: both legs look alike, the side shows at the hips and the head)
can settle in a symmetric optimum where its left and right heatmaps are equal, each with half a
peak on both ankles: with equal final-layer rows the left-minus-right gradient vanishes and plain
training stays there. A ridge from the parent joint (the knee, whose side the network does tell)
to the child in the child's target gives that gradient a path along the shin. A short last stage
without ridges restores the official Gaussian heatmaps; a long one lets the pair drift back
together (numbers in engines/assets/lite_w16_160x128.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.pose.geometry import PIXEL_STD, affine_points, get_affine_transform
from engines.models.catalogue import IMAGENET_MEAN, IMAGENET_STD
from engines.errors import UserError
from engines.pose.schemas import KeypointSchema
from trainer.targets import fliplr_joints, generate_target

__all__ = ["TopDownTransform", "add_limb_guides", "limb_guide_pairs", "lower_body_ids", "normalize"]

_MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
_STD = np.array(IMAGENET_STD, dtype=np.float32)
HALF_BODY_PADDING = 1.5  # official: the half-body box is enlarged 1.5x
LOWER_BODY_WORDS = ("hip", "knee", "ankle", "pelvis")
# Official USE_DIFFERENT_JOINTS_WEIGHT values by body part (COCO: eyes/nose 1, elbows/knees 1.2,
# wrists/ankles 1.5).
PART_WEIGHTS = {"elbow": 1.2, "knee": 1.2, "wrist": 1.5, "ankle": 1.5}


def lower_body_ids(schema: KeypointSchema) -> np.ndarray:
    """Joint indices of the lower body (hips, knees, ankles, pelvis); the rest is upper body."""
    return np.array([i for i, n in enumerate(schema.joints) if any(w in n for w in LOWER_BODY_WORDS)])


def joint_weights(schema: KeypointSchema) -> np.ndarray:
    return np.array([next((v for k, v in PART_WEIGHTS.items() if k in n), 1.0) for n in schema.joints],
                    dtype=np.float32)


def limb_guide_pairs(schema: KeypointSchema, pairs) -> tuple[tuple[int, int], ...]:
    """("parent:child" joint names, ...) -> ((parent index, child index), ...); UserError if unknown."""
    out = []
    for text in pairs:
        names = str(text).split(":")
        if len(names) != 2 or any(n not in schema.joints for n in names):
            raise UserError(f"DATASET.LIMB_GUIDE_PAIRS: {text!r} is not 'parent:child' with joints of "
                            f"{schema.name} ({', '.join(schema.joints)})")
        out.append((schema.index(names[0]), schema.index(names[1])))
    return tuple(out)


def add_limb_guides(target: np.ndarray, target_weight: np.ndarray, joints_px: np.ndarray, pairs,
                    stride: np.ndarray, sigma: float, peak: float) -> np.ndarray:
    """Raise target[child] (J,H,W) to a ridge of height `peak` along the parent-child segment: a
    Gaussian of `sigma` heatmap pixels in the distance to the segment. Only where both joints have
    a target (weight > 0); `joints_px` are crop pixels, `stride` crop pixels per heatmap pixel."""
    h, w = target.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    for parent, child in pairs:
        if target_weight[parent, 0] <= 0 or target_weight[child, 0] <= 0:
            continue
        a, b = (np.asarray(joints_px[j, :2], np.float32) / stride for j in (parent, child))
        ab = b - a
        t = np.clip(((xs - a[0]) * ab[0] + (ys - a[1]) * ab[1]) / max(float(ab @ ab), 1e-6), 0.0, 1.0)
        d2 = (xs - a[0] - t * ab[0]) ** 2 + (ys - a[1] - t * ab[1]) ** 2
        target[child] = np.maximum(target[child], peak * np.exp(-d2 / (2 * sigma ** 2)))
    return target


def normalize(image_rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 3xHxW, ImageNet mean/std (torchvision ToTensor + Normalize)."""
    x = (image_rgb.astype(np.float32) / 255.0 - _MEAN) / _STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


@dataclass
class TopDownTransform:
    """Crop one person and build (input, target, target_weight); `train` enables augmentation."""

    schema: KeypointSchema
    image_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float
    train: bool
    flip: bool = True
    scale_factor: float = 0.35
    rot_factor: float = 45.0
    prob_rotation: float = 0.6
    prob_half_body: float = 0.3
    num_joints_half_body: int = 8
    use_joint_weights: bool = False
    limb_guide: float = 0.0
    limb_guide_pairs: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, cfg, schema: KeypointSchema, train: bool) -> "TopDownTransform":
        p, d = cfg.preset(), cfg.DATASET
        return cls(schema, tuple(p.image_size), tuple(p.heatmap_size), p.sigma, train, d.FLIP,
                   d.SCALE_FACTOR, d.ROT_FACTOR, d.PROB_ROTATION, d.PROB_HALF_BODY,
                   d.NUM_JOINTS_HALF_BODY, cfg.LOSS.USE_DIFFERENT_JOINTS_WEIGHT,
                   d.LIMB_GUIDE if train else 0.0, tuple(d.LIMB_GUIDE_PAIRS))

    def __post_init__(self):
        self.lower = np.zeros(self.schema.num_joints, dtype=bool)
        self.lower[lower_body_ids(self.schema)] = True
        self.weights = joint_weights(self.schema) if self.use_joint_weights else None
        self.aspect = self.image_size[0] / self.image_size[1]
        self.guides = limb_guide_pairs(self.schema, self.limb_guide_pairs) if self.limb_guide > 0 else ()

    def half_body(self, joints: np.ndarray, vis: np.ndarray, rng: np.random.Generator):
        """Centre and scale of the upper or lower body box, or None when too few joints."""
        labelled = vis[:, 0] > 0
        upper = joints[labelled & ~self.lower, :2]
        lower = joints[labelled & self.lower, :2]
        # Official quirk kept: it compares a *normal* draw with 0.5 (upper body ~69% of the time).
        chosen = upper if rng.standard_normal() < 0.5 and len(upper) > 2 else (
            lower if len(lower) > 2 else upper)
        if len(chosen) < 2:
            return None
        chosen = chosen.astype(np.float32)
        center = chosen.mean(axis=0)
        w, h = chosen.max(axis=0) - chosen.min(axis=0)
        if w > self.aspect * h:
            h = w / self.aspect
        elif w < self.aspect * h:
            w = h * self.aspect
        return center, np.array([w, h], dtype=np.float32) / PIXEL_STD * HALF_BODY_PADDING

    def __call__(self, image_rgb: np.ndarray, joints: np.ndarray, vis: np.ndarray,
                 center: np.ndarray, scale: np.ndarray, rng: np.random.Generator | None = None) -> dict:
        joints = joints.astype(np.float64).copy()
        vis = vis.astype(np.float64).copy()
        center = np.asarray(center, dtype=np.float64).copy()
        scale = np.asarray(scale, dtype=np.float64).copy()
        rot = 0.0
        if self.train:
            if vis[:, 0].sum() > self.num_joints_half_body and rng.random() < self.prob_half_body:
                box = self.half_body(joints, vis, rng)
                if box is not None:
                    center, scale = box[0].astype(np.float64), box[1].astype(np.float64)
            sf, rf = self.scale_factor, self.rot_factor
            scale = scale * np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf)
            rot = float(np.clip(rng.standard_normal() * rf, -rf * 2, rf * 2)) \
                if rng.random() <= self.prob_rotation else 0.0
            if self.flip and rng.random() <= 0.5:
                image_rgb = image_rgb[:, ::-1]
                joints, vis = fliplr_joints(joints, vis, image_rgb.shape[1], self.schema.flip_permutation())
                center[0] = image_rgb.shape[1] - center[0] - 1
        trans = get_affine_transform(center, scale, rot, self.image_size)
        crop = cv2.warpAffine(np.ascontiguousarray(image_rgb), trans, tuple(int(v) for v in self.image_size),
                              flags=cv2.INTER_LINEAR)
        labelled = vis[:, 0] > 0
        joints[labelled, :2] = affine_points(joints[labelled, :2], trans)
        target, target_weight = generate_target(joints, vis, self.image_size, self.heatmap_size,
                                                self.sigma, self.weights)
        if self.guides:
            stride = np.asarray(self.image_size, np.float32) / np.asarray(self.heatmap_size, np.float32)
            target = add_limb_guides(target, target_weight, joints, self.guides, stride, self.sigma,
                                     self.limb_guide)
        return {"input": normalize(crop), "target": target.astype(np.float32),
                "target_weight": target_weight.astype(np.float32),
                "center": center.astype(np.float32), "scale": scale.astype(np.float32),
                "rotation": np.float32(rot)}

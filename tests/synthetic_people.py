"""Synthetic moving people with known ground truth, for the tracker tests (jitter, propagation, export).

People are a COCO-17 stick template scaled to a height, walking on smooth paths (a straight
drift plus a slow sway) with swinging arms and legs. `noisy_detections` adds what a pose model
adds: pixel noise on every joint, joint scores, and a box around the noisy joints.
"""

from __future__ import annotations

import numpy as np

__all__ = ["COCO_TEMPLATE", "synthetic_people", "noisy_detections", "boxes_from_keypoints"]

# COCO-17 joints in a person-height-1 frame centred at the hips' midpoint (x right, y down).
COCO_TEMPLATE = np.array([
    [0.00, -0.42], [-0.03, -0.45], [0.03, -0.45], [-0.06, -0.43], [0.06, -0.43],
    [-0.12, -0.30], [0.12, -0.30], [-0.15, -0.13], [0.15, -0.13], [-0.16, 0.02], [0.16, 0.02],
    [-0.08, 0.00], [0.08, 0.00], [-0.09, 0.24], [0.09, 0.24], [-0.09, 0.47], [0.09, 0.47],
], np.float64)
_SWING = np.zeros((17, 2))
_SWING[[7, 10, 14, 15], 0] = [0.05, 0.09, 0.05, 0.10]   # left elbow, right wrist, right knee, left ankle
_SWING[[8, 9, 13, 16], 0] = [-0.05, -0.09, -0.05, -0.10]  # their opposite phase partners


def synthetic_people(num_people: int, num_frames: int, rng: np.random.Generator,
                     frame_size: tuple[int, int] = (1280, 720), height_range=(120.0, 260.0),
                     speed: float = 3.0) -> np.ndarray:
    """Ground-truth keypoints (F,P,17,3) float64 (score 1) of people moving smoothly in the frame."""
    w, h = frame_size
    t = np.arange(num_frames)[:, None]
    heights = rng.uniform(*height_range, num_people)
    start = rng.uniform([0.1 * w, 0.3 * h], [0.9 * w, 0.7 * h], (num_people, 2))
    velocity = rng.normal(0, speed, (num_people, 2)) * [1.0, 0.3]
    sway_amp = rng.uniform(5, 25, (num_people, 2))
    sway_freq = rng.uniform(0.02, 0.06, (num_people, 2))
    phase = rng.uniform(0, 2 * np.pi, (num_people, 2))
    centre = start[None] + velocity[None] * t[:, :, None] + sway_amp * np.sin(sway_freq * t[:, :, None] * 2 * np.pi + phase)
    # keep people inside the frame by reflecting at the borders
    span = np.array([w, h], np.float64)
    centre = np.abs((centre + span) % (2 * span) - span)
    gait = np.sin(2 * np.pi * 0.04 * t + phase[None, :, 0])[:, :, None, None]   # (F,P,1,1)
    shape = COCO_TEMPLATE[None, None] + gait * _SWING[None, None]                # (F,P,17,2)
    xy = centre[:, :, None, :] + shape * heights[None, :, None, None]
    return np.concatenate([xy, np.ones(xy.shape[:-1] + (1,))], axis=-1)


def boxes_from_keypoints(kpts: np.ndarray, score: np.ndarray, pad: float = 0.1) -> np.ndarray:
    """(N,5) xyxy+score boxes enclosing the joints, padded by `pad` of their extent."""
    lo, hi = kpts[:, :, :2].min(axis=1), kpts[:, :, :2].max(axis=1)
    margin = (hi - lo) * pad
    return np.concatenate([lo - margin, hi + margin, score[:, None]], axis=1).astype(np.float32)


def noisy_detections(gt: np.ndarray, rng: np.random.Generator, noise: float = 0.015) -> tuple[np.ndarray, np.ndarray]:
    """One frame's detections from ground truth (P,17,3): joints jittered by `noise` x person height."""
    heights = np.ptp(gt[:, :, 1], axis=1)
    kpts = gt.copy()
    kpts[:, :, :2] += rng.normal(0, 1, gt[:, :, :2].shape) * (noise * heights)[:, None, None]
    kpts[:, :, 2] = rng.uniform(0.5, 0.95, gt.shape[:2])
    boxes = boxes_from_keypoints(kpts, rng.uniform(0.7, 0.95, len(gt)))
    return boxes, kpts.astype(np.float32)

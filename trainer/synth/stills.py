"""Still images: a random crowd of posed figures on a random background, with ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import scene
from .figure import HEAD_ASPECT, Placed, place, render_people, sample_looks, visibility, visible_boxes
from .motion import MOTION_ID, motion_angles
from .skeleton import P, sample_bodies


@dataclass(frozen=True)
class StillKnobs:
    width: int = 640
    height: int = 360
    people: tuple[int, int] = (1, 6)
    occlusion: float = 0.5       # chance that a figure is placed overlapping an earlier one
    motions: tuple[str, ...] = ("stand", "walk", "run", "wave", "squat", "jump", "turn", "pose")
    min_height: float = 0.3      # figure height range as a fraction of the image height
    max_height: float = 0.95
    noise: float = 4.0           # sensor noise sigma (grey levels)
    blur: float = 0.15           # chance of motion blur


@dataclass
class Truth:
    """Ground truth for the people in one frame (rows): joints (P, NUM_GT, 2) f32, flags (P, NUM_GT),
    visible boxes xywh (P, 4), visible areas (P,), head boxes xywh (P, 4)."""

    joints: np.ndarray
    flags: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    head_boxes: np.ndarray


def head_boxes(placed: Placed) -> np.ndarray:
    """Head boxes xywh around the drawn head and hair (PoseTrack's bbox_head, used by PCKh)."""
    c = placed.points[:, P["head_center"]]
    r = placed.bodies.head_r * placed.scale
    w, h = 2.1 * r, 2.1 * HEAD_ASPECT * r
    return np.stack([c[:, 0] - w / 2, c[:, 1] - h / 2 - 0.08 * h, w, h], 1).astype(np.float32)


def render_frame(base: np.ndarray, placed, looks, noise: scene.Noise, rng: np.random.Generator,
                 gain: float = 1.0, bias: float = 0.0, blur: tuple[int, float] = (0, 0.0),
                 soften: float = 0.0, foreground: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, Truth, np.ndarray]:
    """Draw people on a copy of `base`, then the `foreground` (image, mask) in front of them,
    lighting, motion blur, lens softness (Gaussian sigma px) and noise. Returns frame, truth, labels."""
    frame = base.copy()
    labels = np.zeros(frame.shape[:2], np.int16)
    windows = render_people(frame, labels, placed, looks)
    if foreground is not None:   # what it covers is nobody's: those joints count as occluded
        np.copyto(frame, foreground[0], where=foreground[1][..., None])
        labels[foreground[1]] = 0
    joints, flags = visibility(placed, labels)
    boxes, areas = visible_boxes(labels, windows)
    if gain != 1.0 or bias != 0.0:
        frame = scene.lighting(frame, gain, bias)
    if blur[0] >= 2:
        frame = scene.motion_blur(frame, blur[0], blur[1])
    if soften > 0:
        frame = cv2.GaussianBlur(frame, (0, 0), soften)
    frame = noise.apply(frame, rng)
    return frame, Truth(joints, flags, boxes, areas, head_boxes(placed)), labels


def sample_still(rng: np.random.Generator, knobs: StillKnobs, noise: scene.Noise):
    """One random still: returns (frame, truth, labels, placed)."""
    w, h = knobs.width, knobs.height
    n = int(rng.integers(knobs.people[0], knobs.people[1] + 1))
    bodies = sample_bodies(rng, n)
    looks = sample_looks(rng, n, len(scene.clothing_patterns()))
    kind = np.array([MOTION_ID[m] for m in knobs.motions])[rng.integers(0, len(knobs.motions), n)]
    angles, lift = motion_angles(kind, rng.random(n), rng.uniform(0.6, 1.3, n), rng.choice([-1.0, 1.0], n), rng)
    yaw = rng.uniform(0, 2 * np.pi, n)
    scale = h * rng.uniform(knobs.min_height, knobs.max_height, n)
    feet = np.zeros((n, 2))
    for i in range(n):
        if i > 0 and rng.random() < knobs.occlusion:
            j = int(rng.integers(0, i))  # overlap an earlier figure
            feet[i, 0] = feet[j, 0] + rng.uniform(-0.35, 0.35) * scale[j]
            feet[i, 1] = feet[j, 1] + rng.uniform(-0.15, 0.15) * scale[j]
        else:
            feet[i, 0] = rng.uniform(-0.05, 1.05) * w
            feet[i, 1] = rng.uniform(max(0.45 * h, scale[i] * 0.85), 1.1 * h)
    placed = place(bodies, angles, yaw, lift, feet, scale, depth=-feet[:, 1])
    base = scene.background(rng, w, h)
    gain, bias = rng.uniform(0.6, 1.3), rng.uniform(-25, 25)
    blur = (int(rng.integers(3, 12)), float(rng.uniform(0, 180))) if rng.random() < knobs.blur else (0, 0.0)
    frame, truth, labels = render_frame(base, placed, looks, noise, rng, gain, bias, blur)
    return frame, truth, labels, placed



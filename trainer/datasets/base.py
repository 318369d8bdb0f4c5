"""People as rows of arrays, and the torch Dataset that turns one row into a training sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from engines.pose.geometry import box_to_center_scale

__all__ = ["PersonRecords", "JointsDataset", "records_from_boxes", "resolve"]


@dataclass
class PersonRecords:
    """N people (ground truth or detections) over a list of images; row i is one person."""

    image_paths: list[str]     # one per image
    image_ids: np.ndarray      # (M,) int64, the annotation file's ids
    person_image: np.ndarray   # (N,) int64 index into image_paths
    centers: np.ndarray        # (N,2) float32, px
    scales: np.ndarray         # (N,2) float32, units of 200 px, padded 1.25x
    joints: np.ndarray         # (N,J,3) float32, x, y, 0
    vis: np.ndarray            # (N,J,3) float32, 0/1 in columns 0 and 1 (official layout)
    scores: np.ndarray         # (N,) float32, 1 for ground truth, detector score otherwise

    def __len__(self) -> int:
        return len(self.centers)


def resolve(root: str | Path, path: str) -> Path:
    """`path` if absolute, else ROOT/path."""
    p = Path(path)
    return p if p.is_absolute() else Path(root) / p


def records_from_boxes(image_paths: list[str], image_ids: np.ndarray, person_image: np.ndarray,
                       boxes_xyxy: np.ndarray, joints: np.ndarray, scores: np.ndarray,
                       image_size: tuple[int, int]) -> PersonRecords:
    """Build records from person boxes and (N,J,3) x, y, visibility keypoints."""
    n = len(person_image)
    if n:
        centers, scales = box_to_center_scale(boxes_xyxy.astype(np.float32), image_size)
    else:
        centers = scales = np.zeros((0, 2), np.float32)
    labelled = np.minimum(joints[..., 2], 1.0)
    xy0 = np.concatenate([joints[..., :2], np.zeros_like(joints[..., :1])], axis=-1)
    vis = np.stack([labelled, labelled, np.zeros_like(labelled)], axis=-1)
    return PersonRecords(image_paths, np.asarray(image_ids, np.int64), np.asarray(person_image, np.int64),
                         np.asarray(centers, np.float32).reshape(n, 2), np.asarray(scales, np.float32).reshape(n, 2),
                         xy0.astype(np.float32), vis.astype(np.float32), np.asarray(scores, np.float32))


def read_image(path: str, rgb: bool) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if rgb else image


class JointsDataset(Dataset):
    """One sample per person row: cropped input, target heatmaps, target weights and meta.

    Augmentation randomness is seeded by (seed, epoch, index): call set_epoch() before each
    epoch, and the same epoch always yields the same samples, whatever the worker count."""

    def __init__(self, records: PersonRecords, transform, seed: int = 0, color_rgb: bool = True):
        self.records = records
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.color_rgb = color_rgb

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        r = self.records
        image_index = int(r.person_image[index])
        image = read_image(r.image_paths[image_index], self.color_rgb)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        sample = self.transform(image, r.joints[index], r.vis[index], r.centers[index],
                                r.scales[index], rng)
        sample = {k: torch.from_numpy(np.asarray(v)) for k, v in sample.items()}
        sample.update(index=index, image_id=int(r.image_ids[image_index]),
                      score=float(r.scores[index]))
        return sample

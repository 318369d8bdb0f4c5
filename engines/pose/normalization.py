"""Input normalisation of the pose networks: x/255, then ImageNet mean and std, RGB order (as
torchvision's ImageNet models, the official HRNet and mmpose's checkpoints were trained)."""

from __future__ import annotations

import numpy as np

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "normalize_crops"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, on the 0..1 scale
IMAGENET_STD = (0.229, 0.224, 0.225)

_MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
_STD = np.array(IMAGENET_STD, dtype=np.float32)


def normalize_crops(crops_bgr: np.ndarray) -> np.ndarray:
    """(N,H,W,3) uint8 BGR -> (N,3,H,W) float32 RGB, (x/255 - mean) / std as torchvision does."""
    x = crops_bgr[..., ::-1].astype(np.float32)
    x *= np.float32(1 / 255)
    x -= _MEAN
    x /= _STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

"""Input normalisation of the pose networks: x/255, then a mean and std per RGB channel (the
model catalogue's; ImageNet's for every model here, as torchvision's ImageNet models, the
official HRNet and mmpose's checkpoints were trained)."""

from __future__ import annotations

import numpy as np

__all__ = ["normalize_crops"]


def normalize_crops(crops_bgr: np.ndarray, mean, std) -> np.ndarray:
    """(N,H,W,3) uint8 BGR -> (N,3,H,W) float32 RGB, (x/255 - mean) / std with `mean` and `std`
    RGB on the 0..1 scale, as torchvision does."""
    x = crops_bgr[..., ::-1].astype(np.float32)
    x *= np.float32(1 / 255)
    x -= np.asarray(mean, dtype=np.float32)
    x /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

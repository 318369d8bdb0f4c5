"""Heatmap codec as the official HRNet code does it: argmax + quarter-pixel decode (or DARK),
back-projection to the image, flip-test fusion (the training targets are in trainer.targets).

Heatmaps are (N, J, H, W) float arrays; all functions work on whole batches at once.
"""

from __future__ import annotations

import cv2
import numpy as np

from engines.pose.geometry import PIXEL_STD

__all__ = ["get_max_preds", "decode_heatmaps", "newton_step_terms", "heatmap_to_image", "flip_back",
           "fuse_flip"]


def get_max_preds(heatmaps: np.ndarray):
    """Integer argmax coords (N,J,2) float32 (x, y) and maxvals (N,J,1) float32. Joints whose
    maximum is <= 0 get coords (0, 0); ties go to the first index in row-major order."""
    hm = np.asarray(heatmaps)
    n, j, h, w = hm.shape
    flat = hm.reshape(n, j, h * w)
    idx = np.argmax(flat, axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2).astype(np.float32)
    preds = np.stack([idx % w, idx // w], axis=2).astype(np.float32)
    preds *= (maxvals > 0).astype(np.float32)
    return preds, maxvals


def _quarter_offset(hm: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Move each argmax a quarter pixel towards the higher neighbour, per axis, only for peaks
    strictly inside (1 < px < W-1, 1 < py < H-1), as the official POST_PROCESS does."""
    n, j, h, w = hm.shape
    px = np.floor(preds[..., 0] + 0.5).astype(np.int64)
    py = np.floor(preds[..., 1] + 0.5).astype(np.int64)
    inside = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    # clip only so the gathers stay in range; rows outside `inside` are ignored
    xc, yc = np.clip(px, 1, w - 2), np.clip(py, 1, h - 2)
    ni, ji = np.ogrid[:n, :j]
    diff_x = hm[ni, ji, yc, xc + 1] - hm[ni, ji, yc, xc - 1]
    diff_y = hm[ni, ji, yc + 1, xc] - hm[ni, ji, yc - 1, xc]
    offset = np.stack([np.sign(diff_x), np.sign(diff_y)], axis=2).astype(np.float32) * np.float32(0.25)
    return preds + offset * inside[..., None]


def _dark_offset(hm: np.ndarray, preds: np.ndarray, blur_sigma: float) -> np.ndarray:
    """DARK (Zhang et al., CVPR 2020): blur each heatmap (keeping its maximum), take the log, and
    refine the argmax by one Newton step of the second-order Taylor expansion at it."""
    n, j, h, w = hm.shape
    peak = hm.max(axis=(2, 3), keepdims=True)
    # OpenCV blurs all N*J maps at once when they are the channels of one image
    stack = np.ascontiguousarray(hm.reshape(n * j, h, w).transpose(1, 2, 0), dtype=np.float32)
    ksize = 2 * int(np.ceil(3 * blur_sigma)) + 1
    blurred = np.empty_like(stack)
    for start in range(0, n * j, 512):          # OpenCV images have at most 512 channels
        part = np.ascontiguousarray(stack[..., start:start + 512])
        blurred[..., start:start + 512] = cv2.GaussianBlur(part, (ksize, ksize), blur_sigma,
                                                           borderType=cv2.BORDER_CONSTANT).reshape(part.shape)
    blurred = blurred.transpose(2, 0, 1).reshape(n, j, h, w)
    rescale = peak.astype(np.float64) / np.maximum(blurred.max(axis=(2, 3), keepdims=True), 1e-12)
    px = preds[..., 0].astype(np.int64)
    py = preds[..., 1].astype(np.int64)
    inside = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    xc, yc = np.clip(px, 2, w - 3), np.clip(py, 2, h - 3)
    ni, ji = np.ogrid[:n, :j]

    def at(dy, dx):  # log of the rescaled blurred map, only where the Taylor step needs it
        return np.log(np.maximum(blurred[ni, ji, yc + dy, xc + dx] * rescale[..., 0, 0], 1e-10))

    num_x, num_y, det = newton_step_terms(at)
    usable = inside & (np.abs(det) > 1e-12) & (peak[..., 0, 0] > 0)
    safe_det = np.where(usable, det, 1.0)
    offset = np.stack([num_x / safe_det, num_y / safe_det], axis=2) * usable[..., None]
    return (preds + offset).astype(np.float32)


def newton_step_terms(at):
    """DARK's step from `at(dy, dx)`, the log map around each peak: central differences give the
    gradient g and Hessian H, and the offset -H^-1 g is (num_x / det, num_y / det) for the 2x2
    case. Plain arithmetic, so numpy arrays and torch tensors (engines.runtimes.gpu_ops) both work."""
    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = 0.25 * (at(0, 2) - 2 * at(0, 0) + at(0, -2))
    dyy = 0.25 * (at(2, 0) - 2 * at(0, 0) + at(-2, 0))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    return -(dyy * dx - dxy * dy), -(dxx * dy - dxy * dx), dxx * dyy - dxy * dxy


def heatmap_to_image(coords: np.ndarray, centers: np.ndarray, scales: np.ndarray, heatmap_size_wh) -> np.ndarray:
    """Heatmap px (N,J,2) -> image px through the inverse crop affine (rotation 0): one factor,
    scale[0]*200/W, for both axes, as the official transform_preds."""
    w, h = float(heatmap_size_wh[0]), float(heatmap_size_wh[1])
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 1, 2)
    factor = np.asarray(scales, dtype=np.float64).reshape(-1, 1, 2)[..., :1] * PIXEL_STD / w
    half = np.array([w / 2.0, h / 2.0])
    return (centers + (np.asarray(coords, dtype=np.float64) - half) * factor).astype(np.float32)


def decode_heatmaps(heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                    method: str = "standard", blur_sigma: float = 2.0) -> np.ndarray:
    """Keypoints (N,J,3) float32 (x, y, maxval) in image px from heatmaps (N,J,H,W).

    method "standard": official get_final_preds with POST_PROCESS (quarter-pixel offset);
    "dark": DARK sub-pixel refinement (`blur_sigma` = the training target's sigma)."""
    hm = np.asarray(heatmaps, dtype=np.float32)
    n, j, h, w = hm.shape
    if n == 0:
        return np.zeros((0, j, 3), dtype=np.float32)
    preds, maxvals = get_max_preds(hm)
    if method == "standard":
        coords = _quarter_offset(hm, preds)
    elif method == "dark":
        coords = _dark_offset(hm, preds, blur_sigma)
    else:
        raise ValueError(f"unknown decode method {method!r}: use 'standard' or 'dark'")
    image_xy = heatmap_to_image(coords, centers, scales, (w, h))
    return np.concatenate([image_xy, maxvals], axis=2)


def flip_back(heatmaps_flipped: np.ndarray, flip_pairs) -> np.ndarray:
    """Heatmaps of a mirrored input, mirrored back along W with left/right channels swapped."""
    hm = np.asarray(heatmaps_flipped)
    perm = np.arange(hm.shape[1])
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return np.ascontiguousarray(hm[:, perm, :, ::-1])


def fuse_flip(heatmaps: np.ndarray, heatmaps_flipped: np.ndarray, flip_pairs) -> np.ndarray:
    """Official flip test: average with the flipped-back heatmaps shifted right by one column
    (SHIFT_HEATMAP; column 0 keeps its own value)."""
    back = flip_back(heatmaps_flipped, flip_pairs)
    back[..., 1:] = back[..., :-1].copy()
    return (np.asarray(heatmaps) + back) * np.float32(0.5)

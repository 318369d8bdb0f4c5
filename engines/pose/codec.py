"""Heatmap codec in numpy: argmax + quarter-pixel decode (or DARK), back-projection to the image,
flip-test fusion (the training targets are in trainer.targets). engines.pose.torch_ops has the
same functions, with the same arguments, on torch tensors.

The quarter-pixel step follows the rule of the family's publisher (`rule`), so that official
weights give their published accuracy:
- "hrnet": the official HRNet code (and Simple Baselines, and this project's trainer). A joint
  with no positive response sits at the heatmap origin (0, 0); a peak moves a quarter pixel
  towards its higher neighbour on both axes, only when it lies inside on both
  (1 < x < W-1 and 1 < y < H-1).
- "mmpose": mmpose 1.x's MSRAHeatmap codec. No positive response: (-1, -1); x moves when
  1 < x < W-1 and 0 < y < H, y when 1 < y < H-1 and 0 < x < W, each axis on its own.
DARK's step needs the peak two pixels from every edge under both rules.

Heatmaps are (N, J, H, W) float arrays; all functions work on whole batches at once.
"""

from __future__ import annotations

import cv2
import numpy as np

from engines.pose.geometry import PIXEL_STD

__all__ = ["RULES", "METHODS", "NO_RESPONSE", "get_max_preds", "decode_heatmaps", "newton_step_terms", "quarter_steps",
           "heatmap_to_image", "flip_back", "fuse_flip", "check_decode"]

RULES = ("hrnet", "mmpose")
METHODS = ("standard", "dark")
# where a joint with no positive response is put, per rule
NO_RESPONSE = {"hrnet": 0.0, "mmpose": -1.0}


def get_max_preds(heatmaps: np.ndarray, rule: str = "hrnet"):
    """Integer argmax coords (N,J,2) float32 (x, y) and maxvals (N,J,1) float32. Joints whose
    maximum is <= 0 go where `rule` puts them; ties go to the first index in row-major order."""
    hm = np.asarray(heatmaps)
    n, j, h, w = hm.shape
    flat = hm.reshape(n, j, h * w)
    idx = np.argmax(flat, axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2).astype(np.float32)
    preds = np.stack([idx % w, idx // w], axis=2).astype(np.float32)
    preds[~(maxvals[..., 0] > 0)] = NO_RESPONSE[rule]   # NaN included
    return preds, maxvals


def quarter_steps(px, py, width: int, height: int, rule: str):
    """(step x, step y): whether `rule` moves the peak at integer (px, py) on each axis. Plain
    comparisons, so numpy arrays and torch tensors (engines.pose.torch_ops) both work."""
    if rule == "hrnet":
        both = (px > 1) & (px < width - 1) & (py > 1) & (py < height - 1)
        return both, both
    return ((px > 1) & (px < width - 1) & (py > 0) & (py < height),
            (py > 1) & (py < height - 1) & (px > 0) & (px < width))


def _quarter_offset(hm: np.ndarray, preds: np.ndarray, rule: str) -> np.ndarray:
    """Move each argmax a quarter pixel towards the higher neighbour, per axis, where `rule` says."""
    n, j, h, w = hm.shape
    px = np.floor(preds[..., 0] + 0.5).astype(np.int64)
    py = np.floor(preds[..., 1] + 0.5).astype(np.int64)
    step_x, step_y = quarter_steps(px, py, w, h, rule)
    # clipped only so the gathers stay in range; where an axis does not step its value is unused
    xs, ys = np.clip(px, 0, w - 1), np.clip(py, 0, h - 1)
    xi, yi = np.clip(px, 1, w - 2), np.clip(py, 1, h - 2)
    ni, ji = np.ogrid[:n, :j]
    diff_x = hm[ni, ji, ys, xi + 1] - hm[ni, ji, ys, xi - 1]
    diff_y = hm[ni, ji, yi + 1, xs] - hm[ni, ji, yi - 1, xs]
    offset = np.stack([np.sign(diff_x) * step_x, np.sign(diff_y) * step_y], axis=2)
    return preds + offset.astype(np.float32) * np.float32(0.25)


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
    case. Plain arithmetic, so numpy arrays and torch tensors (engines.pose.torch_ops) both work."""
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


def check_decode(method: str, rule: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown decode method {method!r}: use one of {', '.join(METHODS)}")
    if rule not in RULES:
        raise ValueError(f"unknown decode rule {rule!r}: use one of {', '.join(RULES)}")


def decode_heatmaps(heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                    method: str = "standard", rule: str = "hrnet", blur_sigma: float = 2.0) -> np.ndarray:
    """Keypoints (N,J,3) float32 (x, y, maxval) in image px from heatmaps (N,J,H,W).

    method "standard": argmax and the quarter-pixel step of `rule` (the official get_final_preds
    with POST_PROCESS for "hrnet"); "dark": DARK sub-pixel refinement (`blur_sigma` = the
    training target's sigma)."""
    check_decode(method, rule)
    hm = np.asarray(heatmaps, dtype=np.float32)
    n, j, h, w = hm.shape
    if n == 0:
        return np.zeros((0, j, 3), dtype=np.float32)
    preds, maxvals = get_max_preds(hm, rule)
    if method == "standard":
        coords = _quarter_offset(hm, preds, rule)
    else:
        coords = _dark_offset(hm, preds, blur_sigma)
    image_xy = heatmap_to_image(coords, centers, scales, (w, h))
    return np.concatenate([image_xy, maxvals], axis=2)


def flip_back(heatmaps_flipped: np.ndarray, flip_order) -> np.ndarray:
    """Heatmaps of a mirrored input, mirrored back along W with left/right channels swapped
    (`flip_order`: the schema's flip_permutation)."""
    hm = np.asarray(heatmaps_flipped)
    return np.ascontiguousarray(hm[:, np.asarray(flip_order), :, ::-1])


def fuse_flip(heatmaps: np.ndarray, heatmaps_flipped: np.ndarray, flip_order) -> np.ndarray:
    """Official flip test (mmpose's too): average with the flipped-back heatmaps shifted right
    by one column (SHIFT_HEATMAP; column 0 keeps its own value)."""
    back = flip_back(heatmaps_flipped, flip_order)
    back[..., 1:] = back[..., :-1].copy()
    return (np.asarray(heatmaps) + back) * np.float32(0.5)

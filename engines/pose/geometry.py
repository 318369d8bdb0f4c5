"""Person-box geometry as the official HRNet code does it: box -> (center, scale), the affine
crop matrix and batched crops.

`scale` is the padded box size (w, h) in units of 200 px (the official `pixel_std`). The affine
uses only `scale[0]`: the crop height follows from the output aspect ratio.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["PIXEL_STD", "box_to_center_scale", "get_affine_transform", "affine_points",
           "crop_people"]

PIXEL_STD = 200.0


def box_to_center_scale(boxes_xyxy: np.ndarray, image_size_wh, padding: float = 1.25, rule: str = "hrnet"):
    """Centers (N,2) and scales (N,2) for boxes (N,4) xyxy, with the box widened or heightened to
    the network input's aspect ratio, and padded. `rule` does it in the arithmetic of the
    family's publisher, so that crops equal theirs to the last bit:
    - "hrnet": the official code (centre x1 + w/2; aspect fixed, then padded; float32 scales);
    - "mmpose": mmpose 1.x (centre (x1 + x2)/2; padded, then aspect fixed, in pixels; the scales
      are float64, so that scale * 200 gives back mmpose's crop size exactly)."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    aspect = float(image_size_wh[0]) / float(image_size_wh[1])
    if rule == "mmpose":
        centers = (boxes[:, 2:] + boxes[:, :2]) * np.float32(0.5)
        w, h = ((boxes[:, 2:] - boxes[:, :2]) * np.float32(padding)).T
        sizes = np.where((w > h * aspect)[:, None], np.stack([w, w / aspect], 1), np.stack([h * aspect, h], 1))
        return centers, sizes.astype(np.float32).astype(np.float64) / PIXEL_STD
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    centers = np.stack([boxes[:, 0] + w * 0.5, boxes[:, 1] + h * 0.5], axis=1)
    too_wide = w > aspect * h
    h_fixed = np.where(too_wide, w / aspect, h)
    w_fixed = np.where(w < aspect * h, h * aspect, w)
    scales = np.stack([w_fixed, h_fixed], axis=1) / PIXEL_STD * padding
    return centers.astype(np.float32), scales.astype(np.float32)


def get_affine_transform(center, scale, rot_deg: float, output_size_wh, inv: bool = False) -> np.ndarray:
    """(2,3) float64 matrix mapping image -> crop (or crop -> image with `inv`).

    Built like the official code, from three float32 point pairs (centre, a point half a box
    width "up" the rotated y axis, and the point 90 degrees from it) solved by
    cv2.getAffineTransform, so the rounding matches theirs (~1e-5 relative)."""
    center = np.asarray(center, dtype=np.float32).reshape(2)
    src_w = float(np.asarray(scale, dtype=np.float64).reshape(2)[0]) * PIXEL_STD
    dst_w, dst_h = float(output_size_wh[0]), float(output_size_wh[1])
    rot = np.pi * float(rot_deg) / 180.0
    sn, cs = np.sin(rot), np.cos(rot)
    # (0, -src_w/2) rotated by rot
    up = np.array([src_w * 0.5 * sn, -src_w * 0.5 * cs])  # float64, summed before the float32 store
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = center + up
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + np.array([0.0, -dst_w * 0.5], dtype=np.float32)
    for pts in (src, dst):
        a_to_b = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-a_to_b[1], a_to_b[0]], dtype=np.float32)
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def affine_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2,3) affine to points (...,2); returns the same shape and dtype as `points`."""
    pts = np.asarray(points)
    m = np.asarray(matrix, dtype=np.float64)
    out = pts.astype(np.float64) @ m[:, :2].T + m[:, 2]
    return out.astype(pts.dtype if np.issubdtype(pts.dtype, np.floating) else np.float64)


def crop_people(frame_bgr: np.ndarray, centers: np.ndarray, scales: np.ndarray, output_size_wh) -> np.ndarray:
    """Crops (N,H,W,3) uint8 of each person, cv2.warpAffine bilinear with a black border."""
    out_w, out_h = int(output_size_wh[0]), int(output_size_wh[1])
    centers = np.asarray(centers, dtype=np.float32).reshape(-1, 2)
    scales = np.asarray(scales).reshape(-1, 2)   # float64 ones (the mmpose rule) stay exact
    crops = np.zeros((len(centers), out_h, out_w, frame_bgr.shape[2]), dtype=np.uint8)
    for i, (c, s) in enumerate(zip(centers, scales)):  # one warp per person: OpenCV has no batch form
        m = get_affine_transform(c, s, 0.0, (out_w, out_h))
        crops[i] = cv2.warpAffine(frame_bgr, m, (out_w, out_h), flags=cv2.INTER_LINEAR)
    return crops

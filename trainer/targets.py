"""Training targets: Gaussian heatmaps and joint mirroring as the official HRNet JointsDataset
makes them, and CenterNet's centre heatmap, size and offset for the person detector."""

from __future__ import annotations

import numpy as np

from engines.detectors.centernet import STRIDE

__all__ = ["generate_target", "fliplr_joints", "encode_centernet_targets", "GAUSSIAN_ALPHA"]

GAUSSIAN_ALPHA = 0.54   # CenterNet: a person's Gaussian spans this share of its box


def generate_target(joints: np.ndarray, joints_vis: np.ndarray, image_size, heatmap_size, sigma,
                    joint_weights=None):
    """Gaussian targets (J,H,W) float32 and target weights (J,1) float32, as the official
    JointsDataset.generate_target: peak 1 at mu = int(x / stride + 0.5) (truncated toward 0),
    zero outside a (6 sigma + 1)^2 window, weight 0 when the window misses the heatmap, no
    Gaussian for weight <= 0.5; weights times `joint_weights` when given."""
    joints = np.asarray(joints, dtype=np.float64)
    vis = np.asarray(joints_vis, dtype=np.float64)
    hm_w, hm_h = int(heatmap_size[0]), int(heatmap_size[1])
    stride = np.asarray(image_size, dtype=np.float64) / np.asarray(heatmap_size, dtype=np.float64)
    tmp_size = sigma * 3
    target_weight = vis[:, :1].astype(np.float32)
    mu = np.trunc(joints[:, :2] / stride + 0.5).astype(np.int64)      # int() semantics
    ul = np.trunc(mu - tmp_size).astype(np.int64)
    br = np.trunc(mu + tmp_size + 1).astype(np.int64)
    misses = (ul[:, 0] >= hm_w) | (ul[:, 1] >= hm_h) | (br[:, 0] < 0) | (br[:, 1] < 0)
    target_weight[misses] = 0
    center = ul + int((2 * tmp_size + 1) // 2)                        # the window's middle cell
    xs = np.arange(hm_w)[None, :]
    ys = np.arange(hm_h)[None, :]
    in_x = (xs >= ul[:, :1]) & (xs < br[:, :1])
    in_y = (ys >= ul[:, 1:]) & (ys < br[:, 1:])
    dx2 = ((xs - center[:, :1]).astype(np.float32)) ** 2
    dy2 = ((ys - center[:, 1:]).astype(np.float32)) ** 2
    g = np.exp(-(dy2[:, :, None] + dx2[:, None, :]) / np.float32(2 * sigma ** 2))
    drawn = (target_weight[:, 0] > 0.5)[:, None, None]
    target = np.where(drawn & in_y[:, :, None] & in_x[:, None, :], g, 0).astype(np.float32)
    if joint_weights is not None:
        target_weight = target_weight * np.asarray(joint_weights, dtype=np.float32).reshape(-1, 1)
    return target, target_weight.astype(np.float32)


def fliplr_joints(joints: np.ndarray, joints_vis: np.ndarray, width: int, flip_order):
    """Mirror joints (J,3) horizontally in an image `width` wide (x -> width - x - 1), swap
    left/right rows (`flip_order`: the schema's flip_permutation), zero invisible joints
    (official). Returns (joints, joints_vis) copies."""
    joints = np.array(joints, copy=True)
    vis = np.array(joints_vis, copy=True)
    joints[:, 0] = width - joints[:, 0] - 1
    joints, vis = joints[flip_order], vis[flip_order]
    return joints * vis, vis


def encode_centernet_targets(boxes_xyxy: np.ndarray, input_size_wh, stride: int = STRIDE):
    """Training targets for person boxes (K,4) in input pixels: heat (1,h,w) float32, size
    (2,h,w), offset (2,h,w) and mask (h,w) bool marking the centre cells."""
    out_w, out_h = int(input_size_wh[0]) // stride, int(input_size_wh[1]) // stride
    heat = np.zeros((1, out_h, out_w), np.float32)
    size = np.zeros((2, out_h, out_w), np.float32)
    offset = np.zeros((2, out_h, out_w), np.float32)
    mask = np.zeros((out_h, out_w), bool)
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    wh = boxes[:, 2:] - boxes[:, :2]
    boxes, wh = boxes[(wh > 0).all(1)], wh[(wh > 0).all(1)]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 / stride
    cell = np.floor(centre).astype(np.int64)
    inside = (cell[:, 0] >= 0) & (cell[:, 0] < out_w) & (cell[:, 1] >= 0) & (cell[:, 1] < out_h)
    cell, centre, wh = cell[inside], centre[inside], wh[inside]
    if len(cell):
        sig = np.maximum(GAUSSIAN_ALPHA * wh / stride / 6, 0.5)                   # (K,2) in cells
        xs, ys = np.arange(out_w), np.arange(out_h)
        gx = np.exp(-((xs[None] - cell[:, :1]) ** 2) / (2 * sig[:, :1] ** 2))      # (K,w)
        gy = np.exp(-((ys[None] - cell[:, 1:]) ** 2) / (2 * sig[:, 1:] ** 2))      # (K,h)
        heat[0] = (gy[:, :, None] * gx[:, None, :]).max(axis=0)                    # overlaps: max
        # smaller people are written last so they win a shared centre cell
        order = np.argsort(-wh.prod(axis=1), kind="stable")
        cx, cy = cell[order, 0], cell[order, 1]
        size[:, cy, cx] = wh[order].T
        offset[:, cy, cx] = (centre[order] - cell[order]).T
        mask[cy, cx] = True
    return heat, size, offset, mask

"""Pose pre- and post-processing in torch, so that on a GPU a frame crosses the bus once; the
numpy path's operations (engines.pose.geometry, .normalization, .codec) with the same arguments.

The frame is uploaded as uint8; every person's crop is cut from it in one batched bilinear
`grid_sample`, driven by the same 2x3 affine matrices as the CPU path
(`engines.pose.geometry.get_affine_transform`, which `cv2.warpAffine` uses there), then flipped to RGB
and normalised. After the network, the decode (argmax, the quarter-pixel step of the family's
rule, back-projection as the official transform_preds), or DARK, runs on the heatmaps where they
are, and only the (N,J,3) keypoints come back. Works on any torch device; results agree with
`engines.pose.geometry.crop_people` within a grey level or two (OpenCV interpolates in fixed
point) and with `engines.pose.codec.decode_heatmaps`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from engines.pose.codec import NO_RESPONSE, check_decode, newton_step_terms, quarter_steps
from engines.pose.geometry import PIXEL_STD, get_affine_transform

__all__ = ["crop_matrices", "upload_frame", "warp_crops", "normalize_crops", "fuse_flip", "decode_heatmaps"]


def crop_matrices(centers: np.ndarray, scales: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """(N,2,3) float64 frame -> crop matrices, one per person, as the CPU crop uses."""
    return np.array([get_affine_transform(c, s, 0, output_size) for c, s in zip(centers, scales)],
                    dtype=np.float64).reshape(-1, 2, 3)


def upload_frame(frame_bgr: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """HxWx3 uint8 numpy -> (1,3,H,W) float32 on `device`; uint8 crosses the bus (4x less)."""
    frame = torch.from_numpy(np.ascontiguousarray(frame_bgr)).to(device, non_blocking=True)
    return frame.permute(2, 0, 1).unsqueeze(0).float()


def warp_crops(frame: torch.Tensor, matrices: np.ndarray, output_size: tuple[int, int]) -> torch.Tensor:
    """Crops (N,C,h,w) float32 of `frame` (1,C,H,W), as cv2.warpAffine(frame, M, (w, h),
    INTER_LINEAR, constant 0 border) cuts them, for matrices (N,2,3) frame -> crop."""
    out_w, out_h = output_size
    _, channels, height, width = frame.shape
    count = len(matrices)
    if count == 0:
        return frame.new_zeros((0, channels, out_h, out_w))
    # warpAffine samples the frame at M^-1 (u, v, 1) for every crop pixel (u, v); inverted in
    # float64 on the CPU (N 3x3 inverses, negligible).
    forward = np.concatenate([np.asarray(matrices, dtype=np.float64).reshape(count, 2, 3),
                              np.broadcast_to([[[0.0, 0.0, 1.0]]], (count, 1, 3))], axis=1)
    inverse = torch.from_numpy(np.linalg.inv(forward)[:, :2].astype(np.float32)).to(frame.device)
    u = torch.arange(out_w, device=frame.device, dtype=torch.float32).view(1, 1, out_w)
    v = torch.arange(out_h, device=frame.device, dtype=torch.float32).view(1, out_h, 1)
    m = inverse.view(count, 2, 3, 1, 1)
    # OpenCV's fixed point: the column term and the row term are each rounded to 1/1024 px, their
    # sum then to 1/32 px (INTER_BITS = 5) with ties upwards. Matching it keeps sharp edges (the
    # frame border above all) within a grey level of the CPU crops.
    src_x = (torch.round(m[:, 0, 0] * u * 1024) + torch.round((m[:, 0, 1] * v + m[:, 0, 2]) * 1024)
             + 16).div(32).floor() / 32
    src_y = (torch.round(m[:, 1, 0] * u * 1024) + torch.round((m[:, 1, 1] * v + m[:, 1, 2]) * 1024)
             + 16).div(32).floor() / 32
    # grid_sample (align_corners=False) puts pixel i's centre at (2i + 1) / size - 1
    grid = torch.stack([(2 * src_x + 1) / width - 1, (2 * src_y + 1) / height - 1], dim=3)
    return F.grid_sample(frame.expand(count, -1, -1, -1), grid, mode="bilinear",
                         padding_mode="zeros", align_corners=False)


def normalize_crops(crops_bgr: torch.Tensor, mean, std, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N,3,h,w) BGR 0..255 -> RGB, (x/255 - mean) / std (RGB, 0..1 scale), as
    engines.pose.normalization.normalize_crops."""
    mean = crops_bgr.new_tensor(mean).view(1, 3, 1, 1) * 255.0
    std = crops_bgr.new_tensor(std).view(1, 3, 1, 1) * 255.0
    return ((crops_bgr.flip(1) - mean) / std).to(dtype)


def fuse_flip(heatmaps: torch.Tensor, heatmaps_flipped: torch.Tensor, flip_order) -> torch.Tensor:
    """engines.pose.codec.fuse_flip on tensors: the mirrored input's heatmaps flipped back (left/right
    joints swapped by `flip_order`), shifted right by one column (column 0 kept), averaged with
    the plain ones."""
    back = heatmaps_flipped[:, list(flip_order)].flip(-1)
    back = torch.cat([back[..., :1], back[..., :-1]], dim=-1)
    return (heatmaps + back) * 0.5


def decode_heatmaps(heatmaps: torch.Tensor, centers: np.ndarray, scales: np.ndarray,
                    method: str = "standard", rule: str = "hrnet", blur_sigma: float = 2.0) -> torch.Tensor:
    """engines.pose.codec.decode_heatmaps on tensors: heatmaps (N,J,h,w) -> keypoints (N,J,3)
    float32 (x, y, maxval) in frame pixels, on the heatmaps' device, for people at
    centers/scales (N,2)."""
    check_decode(method, rule)
    heatmaps = heatmaps.float()
    count, joints, height, width = heatmaps.shape
    if count == 0:
        return heatmaps.new_zeros((0, joints, 3))
    flat = heatmaps.reshape(count, joints, height * width)
    maxvals, index = flat.max(dim=2)  # first maximum on ties, as numpy's argmax
    positive = maxvals > 0
    no_response = torch.full_like(maxvals, NO_RESPONSE[rule])
    x = torch.where(positive, (index % width).float(), no_response)
    y = torch.where(positive, torch.div(index, width, rounding_mode="floor").float(), no_response)
    if method == "standard":
        x, y = _quarter_step(flat, x, y, width, height, rule)
    else:
        x, y = _dark_step(heatmaps, x, y, blur_sigma)
    # the official transform_preds: one factor, scale[0] * 200 / w, for both axes (float64, as numpy)
    centers = torch.as_tensor(np.asarray(centers, np.float64), device=heatmaps.device).reshape(count, 1, 2)
    factor = torch.as_tensor(np.asarray(scales, np.float64)[:, :1] * PIXEL_STD / width,
                             device=heatmaps.device).reshape(count, 1)
    frame_x = centers[..., 0] + (x.double() - width / 2.0) * factor
    frame_y = centers[..., 1] + (y.double() - height / 2.0) * factor
    return torch.stack([frame_x.float(), frame_y.float(), maxvals], dim=2)


def _quarter_step(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor, width: int, height: int, rule: str):
    px, py = x.long(), y.long()
    step_x, step_y = quarter_steps(px, py, width, height, rule)
    # clamped only so the gathers stay in range; where an axis does not step its value is unused
    xs, ys = px.clamp(0, width - 1), py.clamp(0, height - 1)
    xi, yi = px.clamp(1, width - 2), py.clamp(1, height - 2)
    neighbours = torch.stack([ys * width + xi + 1, ys * width + xi - 1,
                              (yi + 1) * width + xs, (yi - 1) * width + xs], dim=2)
    right, left, down, up = flat.gather(2, neighbours).unbind(2)
    zero = torch.zeros_like(x)
    return (x + torch.where(step_x, torch.sign(right - left) * 0.25, zero),
            y + torch.where(step_y, torch.sign(down - up) * 0.25, zero))


def _dark_step(heatmaps: torch.Tensor, x: torch.Tensor, y: torch.Tensor, blur_sigma: float):
    """As engines.pose.codec's DARK: Gaussian blur with a zero border (cv2.GaussianBlur's kernel),
    rescaled to keep each map's maximum, log, then offset = -Hessian^-1 gradient at the argmax
    from central differences; the step is done in float64 like the numpy version."""
    count, joints, height, width = heatmaps.shape
    radius = int(np.ceil(3 * blur_sigma))
    taps = torch.arange(-radius, radius + 1, device=heatmaps.device, dtype=torch.float64)
    kernel = torch.exp(-taps ** 2 / (2 * blur_sigma ** 2))
    kernel = (kernel / kernel.sum()).float()
    maps = heatmaps.reshape(count * joints, 1, height, width)
    maps = F.conv2d(maps, kernel.view(1, 1, 1, -1), padding=(0, radius))
    blurred = F.conv2d(maps, kernel.view(1, 1, -1, 1), padding=(radius, 0)).reshape(count, joints, -1)
    peak = heatmaps.amax(dim=(2, 3)).double()
    rescale = peak / blurred.amax(dim=2).double().clamp(min=1e-12)
    px, py = x.long(), y.long()
    inside = (px > 1) & (px < width - 2) & (py > 1) & (py < height - 2)
    xc, yc = px.clamp(2, width - 3), py.clamp(2, height - 3)

    def at(dy: int, dx: int) -> torch.Tensor:
        values = blurred.gather(2, ((yc + dy) * width + xc + dx).unsqueeze(2)).squeeze(2).double()
        return torch.log((values * rescale).clamp(min=1e-10))

    num_x, num_y, det = newton_step_terms(at)
    usable = inside & (det.abs() > 1e-12) & (peak > 0)
    safe_det = torch.where(usable, det, torch.ones_like(det))
    zero = torch.zeros_like(det)
    return (x + torch.where(usable, num_x / safe_det, zero).float(),
            y + torch.where(usable, num_y / safe_det, zero).float())

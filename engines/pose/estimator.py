"""Top-down pose estimation: BGR frame + person boxes -> keypoints (N,J,3) in frame pixels.

Per call: sanitize boxes, box -> center/scale (1.25 padding, aspect fix), one batched affine crop,
BGR -> RGB and ImageNet normalisation, one batched forward (with the mirrored crops in the same
batch when flip test is on), decode through the inverse affine. Same steps as the official
validation code, so official weights give official accuracy.

On a CUDA device those steps run there (engines.runtimes.gpu_ops): the frame goes up once as uint8, all
crops are cut by one grid_sample, and only the (N,J,3) keypoints come back. On the CPU, OpenCV's
warpAffine and numpy do them.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import torch

from engines.runtimes import gpu_ops
from engines.runtimes.backends import BackendOptions, TensorBackend, create_backend, default_backend
from engines.pose.codec import decode_heatmaps, fuse_flip
from engines.detectors.base import validate_frame
from engines.errors import UserError
from engines.pose.normalization import normalize_crops
from engines.pose.geometry import box_to_center_scale, crop_people, sanitize_boxes
from engines.models.presets import Preset, build_network, get_preset
from engines.pose.schemas import get_schema
from engines.models.weights import load_weights

__all__ = ["PoseEstimator"]

DECODERS = ("standard", "dark")


class PoseEstimator:
    """HRNet pose estimation on person boxes.

    `estimate` returns one row per input box, in input order. Boxes that cannot be used (NaN or
    infinite coordinates, zero size, entirely outside the frame) give an all-zero row: x = y = 0
    and score 0, never NaN; boxes partly outside are clamped to the frame first. Callers that
    want to drop such people keep rows with any score > 0.

    preset: name or Preset. weights: checkpoint path or state_dict (random weights when None).
    backend: a name in engines.runtimes.backends.BACKENDS ("torch", "onnxruntime"); None: the
    device's fastest (`default_backend`: ONNX Runtime on the CPU, torch on CUDA). onnx_path: run this
    ONNX file (with its own weights) instead of exporting the network to the cache. half and
    channels_last: torch only; threads: onnxruntime intra-op threads in all; workers:
    onnxruntime CPU sessions splitting each batch (None = two on two or more cores); batch_profile: (min, opt,
    max) crops per call of a torch-based backend (a TensorRT engine's range; larger batches are
    split). decode: "dark" (sub-pixel, the default) or "standard" (official argmax + quarter offset). on_device: crop,
    normalise and decode with torch on the backend's device (torch-based backends only); None =
    yes on CUDA.
    """

    def __init__(self, preset: str | Preset, weights: str | os.PathLike | Mapping | None = None,
                 backend: str | None = None, device: str = "cpu", half: bool = False,
                 flip_test: bool = False, decode: str = "dark",
                 onnx_path: str | os.PathLike | None = None, channels_last: bool = False,
                 threads: int | None = None, workers: int | None = None,
                 batch_profile: tuple[int, int, int] | None = None, on_device: bool | None = None):
        self.preset = preset if isinstance(preset, Preset) else get_preset(preset)
        self.schema = get_schema(self.preset.schema)
        if decode not in DECODERS:
            raise UserError(f"unknown decode {decode!r}; choose one of: {', '.join(DECODERS)}")
        if self.schema.num_joints != self.preset.num_joints:
            raise UserError(f"preset {self.preset.name} has {self.preset.num_joints} joints, "
                            f"schema {self.schema.name} {self.schema.num_joints}")
        model = build_network(self.preset)
        if weights is not None:
            load_weights(model, weights)
        options = BackendOptions(device=device, half=half, channels_last=channels_last,
                                 onnx_path=None if onnx_path is None else str(onnx_path),
                                 threads=threads, workers=workers, batch_profile=batch_profile)
        backend = backend or default_backend(device)
        self.backend = create_backend(backend, model, self.preset.image_size, options)
        tensor_backend = isinstance(self.backend, TensorBackend)
        if on_device and not tensor_backend:
            raise UserError(f"on-device pre-processing needs a torch-based backend, not {backend}")
        if on_device is None:
            on_device = tensor_backend and self.backend.device.type == "cuda"
        self.on_device = on_device
        self.flip_test = flip_test
        self.decode = decode
        self.flip_pairs = np.asarray(self.schema.flip_pairs, dtype=np.int64).reshape(-1, 2)

    @property
    def num_joints(self) -> int:
        return self.preset.num_joints

    def estimate(self, frame_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Keypoints (N,J,3) float32 (x, y, score) in frame pixels for boxes (N,4|5) xyxy."""
        validate_frame(frame_bgr)
        boxes = np.asarray(boxes, dtype=np.float32)
        boxes = boxes.reshape(-1, boxes.shape[-1] if boxes.size else 4)
        keypoints = np.zeros((len(boxes), self.num_joints, 3), dtype=np.float32)
        if len(boxes) == 0:
            return keypoints
        height, width = frame_bgr.shape[:2]
        clean, kept = sanitize_boxes(boxes[:, :4], width, height)
        if len(kept) == 0:
            return keypoints
        centers, scales = box_to_center_scale(clean[:, :4], self.preset.image_size)
        if self.on_device:
            decoded = self._estimate_on_device(frame_bgr, centers, scales)
        else:
            crops = crop_people(frame_bgr, centers, scales, self.preset.image_size)
            decoded = self._decode(self.heatmaps(normalize_crops(crops)), centers, scales)
        # a non-finite heatmap (e.g. fp16 overflow) must not leak NaN to the tracker: 0, score 0
        keypoints[kept] = np.nan_to_num(decoded.astype(np.float32, copy=False), nan=0.0,
                                        posinf=0.0, neginf=0.0)
        return keypoints

    def _decode(self, heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        # DARK smooths with the training target's sigma before its Taylor step
        return decode_heatmaps(heatmaps, centers, scales, method=self.decode, blur_sigma=self.preset.sigma)

    def _estimate_on_device(self, frame_bgr: np.ndarray, centers: np.ndarray,
                            scales: np.ndarray) -> np.ndarray:
        images = gpu_ops.crop_and_normalize(frame_bgr, centers, scales, self.preset.image_size,
                                            self.backend.device)
        with torch.inference_mode():
            if self.flip_test:
                both = self.backend.run_tensor(torch.cat([images, images.flip(-1)])).float()
                heatmaps = gpu_ops.fuse_flip(both[:len(images)], both[len(images):], self.flip_pairs)
            else:
                heatmaps = self.backend.run_tensor(images).float()
            return gpu_ops.decode_people(heatmaps, centers, scales, self.decode,
                                         self.preset.sigma).cpu().numpy()

    def heatmaps(self, images: np.ndarray) -> np.ndarray:
        """Network heatmaps (N,J,h,w) for normalised crops, fused with the flip test if enabled
        (mirrored crops ride in the same batch: one forward pass)."""
        if not self.flip_test:
            return self.backend(images)
        both = self.backend(np.concatenate([images, images[..., ::-1]]))
        n = len(images)
        return fuse_flip(both[:n], both[n:], self.flip_pairs)

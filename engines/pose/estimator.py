"""Top-down pose estimation: BGR frame + person boxes -> keypoints (N,J,3) in frame pixels.

Per call: keep the usable boxes, box -> center/scale (1.25 padding, aspect fix), one batched
affine crop, BGR -> RGB and normalisation, one batched forward (with the mirrored crops in the
same batch when flip test is on), decode through the inverse affine: the steps of the official
validation code, so official weights give official accuracy. They run in the processing object
the estimator picks once (engines.pose.processing): on the CPU in OpenCV and numpy, on a CUDA
device in torch there (the frame goes up once as uint8, only keypoints come back).
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from engines.common.boxes import usable_boxes
from engines.common.frames import validate_frame
from engines.errors import UserError
from engines.models.catalogue import IMAGENET_MEAN, IMAGENET_STD
from engines.models.presets import Preset, build_network, get_preset
from engines.models.weights import load_weights
from engines.pose.geometry import box_to_center_scale
from engines.pose.processing import NumpyProcessing, ProcessingSpec, TorchProcessing
from engines.pose.schemas import get_schema
from engines.runtimes.backends import BackendOptions, TensorBackend, create_backend, default_backend

__all__ = ["PoseEstimator"]


class PoseEstimator:
    """HRNet pose estimation on person boxes.

    `estimate` returns one row per input box, in input order. Boxes that cannot be used (NaN or
    infinite coordinates, under a pixel wide or high once clamped to the frame) give an all-zero
    row: x = y = 0 and score 0, never NaN; boxes partly outside are clamped to the frame first.
    Callers that want to drop such people keep rows with any score > 0.

    preset: name or Preset. weights: checkpoint path or state_dict (random weights when None).
    backend: a name in engines.runtimes.backends.BACKENDS ("torch", "onnxruntime"); None: the
    device's fastest (`default_backend`: ONNX Runtime on the CPU, torch on CUDA). onnx_path: run this
    ONNX file (with its own weights) instead of exporting the network to the cache. half and
    channels_last: torch only; threads: onnxruntime intra-op threads in all; workers:
    onnxruntime CPU sessions splitting each batch (None = two on two or more cores); batch_profile: (min, opt,
    max) crops per call of a torch-based backend (a TensorRT engine's range; larger batches are
    split). decode: "dark" (sub-pixel, the default) or "standard" (argmax + quarter offset);
    decode_rule: the family's rule for both ("hrnet" official, "mmpose"; engines.pose.codec);
    mean, std: the input normalisation (RGB, 0..1 scale). load_pose fills these from the model's
    catalogue entry. on_device: crop, normalise and decode with torch on the backend's device
    (torch-based backends only); None = yes on CUDA.
    """

    def __init__(self, preset: str | Preset, weights: str | os.PathLike | Mapping | None = None,
                 backend: str | None = None, device: str = "cpu", half: bool = False,
                 flip_test: bool = False, decode: str = "dark", decode_rule: str = "hrnet",
                 mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 onnx_path: str | os.PathLike | None = None, channels_last: bool = False,
                 threads: int | None = None, workers: int | None = None,
                 batch_profile: tuple[int, int, int] | None = None, on_device: bool | None = None):
        self.preset = preset if isinstance(preset, Preset) else get_preset(preset)
        self.schema = get_schema(self.preset.schema)
        if self.schema.num_joints != self.preset.num_joints:
            raise UserError(f"preset {self.preset.name} has {self.preset.num_joints} joints, "
                            f"schema {self.schema.name} {self.schema.num_joints}")
        spec = ProcessingSpec(input_size=self.preset.image_size, heatmap_size=self.preset.heatmap_size,
                              mean=tuple(mean), std=tuple(std),
                              flip_order=tuple(int(i) for i in self.schema.flip_permutation()),
                              method=decode, rule=decode_rule, blur_sigma=self.preset.sigma)
        model = build_network(self.preset)
        if weights is not None:
            load_weights(model, weights)
        options = BackendOptions(device=device, half=half, channels_last=channels_last,
                                 onnx_path=None if onnx_path is None else str(onnx_path),
                                 threads=threads, workers=workers, batch_profile=batch_profile)
        name = backend or default_backend(device)
        backend = create_backend(name, model, self.preset.image_size, options)
        tensor_backend = isinstance(backend, TensorBackend)
        if on_device and not tensor_backend:
            raise UserError(f"on-device pre-processing needs a torch-based backend, not {name}")
        if on_device is None:
            on_device = tensor_backend and backend.device.type == "cuda"
        self.on_device = on_device
        self.processing = (TorchProcessing if on_device else NumpyProcessing)(spec, backend)
        self.flip_test = flip_test

    @property
    def num_joints(self) -> int:
        return self.preset.num_joints

    @property
    def backend(self):
        """The pose network's runtime (engines.runtimes.backends), which the processing drives."""
        return self.processing.backend

    @property
    def decode(self) -> str:
        return self.processing.spec.method

    def estimate(self, frame_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Keypoints (N,J,3) float32 (x, y, score) in frame pixels for boxes (N,4|5) xyxy."""
        validate_frame(frame_bgr)
        boxes = np.asarray(boxes, dtype=np.float32)
        boxes = boxes.reshape(-1, boxes.shape[-1] if boxes.size else 4)
        keypoints = np.zeros((len(boxes), self.num_joints, 3), dtype=np.float32)
        height, width = frame_bgr.shape[:2]
        clean, kept = usable_boxes(boxes[:, :4], (width, height))
        if len(kept) == 0:
            return keypoints
        steps = self.processing
        centers, scales = box_to_center_scale(clean, steps.spec.input_size, rule=steps.spec.rule)
        heatmaps = steps.heatmaps(steps.inputs(frame_bgr, centers, scales), self.flip_test)
        decoded = steps.keypoints(heatmaps, centers, scales)
        # a non-finite heatmap (e.g. fp16 overflow) must not leak NaN to the tracker: 0, score 0
        keypoints[kept] = np.nan_to_num(decoded.astype(np.float32, copy=False), nan=0.0,
                                        posinf=0.0, neginf=0.0)
        return keypoints

    def heatmaps(self, images: np.ndarray) -> np.ndarray:
        """Network heatmaps (N,J,h,w) for normalised crops (N,3,H,W), fused with the flip test if
        enabled (mirrored crops ride in the same batch: one forward pass)."""
        return NumpyProcessing(self.processing.spec, self.backend).heatmaps(images, self.flip_test)

"""The steps around the pose network, as one object the estimator picks once: cut each person's
crop from the frame and normalise it, run the network (the flip test's mirrored crops in the
same batch, then fused), decode the heatmaps to frame pixels.

`ProcessingSpec` holds everything that drives them: input and heatmap size and normalisation
from the model's catalogue entry, the flip order from its keypoint schema, and the decode
method and its family's rule (engines.pose.codec). `NumpyProcessing` does the steps with OpenCV
and numpy, for the CPU backends; `TorchProcessing` with torch on the network's device (on a GPU
the frame goes up once as uint8 and only keypoints come back). Both take and give the same
things: numpy frames, centres and scales in, numpy keypoints out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engines.errors import UserError
from engines.pose import codec, torch_ops
from engines.pose.geometry import crop_people
from engines.pose.normalization import normalize_crops

__all__ = ["ProcessingSpec", "NumpyProcessing", "TorchProcessing"]


@dataclass(frozen=True)
class ProcessingSpec:
    input_size: tuple[int, int]                 # (w, h) of the network input
    heatmap_size: tuple[int, int]               # (w, h) of its heatmaps
    mean: tuple[float, float, float]            # RGB, 0..1 scale
    std: tuple[float, float, float]
    flip_order: tuple[int, ...]                 # the schema's left/right permutation
    method: str = "dark"                        # "dark" or "standard"
    rule: str = "hrnet"                         # the family's decode rule: "hrnet" or "mmpose"
    blur_sigma: float = 2.0                     # DARK's blur: the training target's sigma

    def __post_init__(self):
        try:
            codec.check_decode(self.method, self.rule)
        except ValueError as exc:
            raise UserError(str(exc)) from None

    def check_heatmaps(self, shape) -> None:
        """A network whose heatmaps are not the size the model's entry says is the wrong one."""
        if tuple(shape[-1:-3:-1]) != tuple(self.heatmap_size):
            raise UserError(f"the network gives {shape[-1]}x{shape[-2]} heatmaps; the model's input "
                            f"{self.input_size[0]}x{self.input_size[1]} expects "
                            f"{self.heatmap_size[0]}x{self.heatmap_size[1]}")


class NumpyProcessing:
    """The steps in OpenCV and numpy around a backend called with numpy batches."""

    def __init__(self, spec: ProcessingSpec, backend):
        self.spec = spec
        self.backend = backend

    def inputs(self, frame_bgr: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """Normalised network input (N,3,h,w) float32 for people at centers/scales (N,2)."""
        crops = crop_people(frame_bgr, centers, scales, self.spec.input_size)
        return normalize_crops(crops, self.spec.mean, self.spec.std)

    def heatmaps(self, inputs: np.ndarray, flip_test: bool) -> np.ndarray:
        """Heatmaps (N,J,h,w), fused with the mirrored inputs' when `flip_test` (one forward pass)."""
        if not flip_test:
            heatmaps = self.backend(inputs)
        else:
            both = self.backend(np.concatenate([inputs, inputs[..., ::-1]]))
            heatmaps = codec.fuse_flip(both[:len(inputs)], both[len(inputs):], self.spec.flip_order)
        self.spec.check_heatmaps(heatmaps.shape)
        return heatmaps

    def keypoints(self, heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """Keypoints (N,J,3) float32 (x, y, score) in frame pixels."""
        spec = self.spec
        return codec.decode_heatmaps(heatmaps, centers, scales, spec.method, spec.rule, spec.blur_sigma)


class TorchProcessing:
    """The steps in torch on the device of a backend that runs tensors there (`run_tensor`)."""

    def __init__(self, spec: ProcessingSpec, backend):
        self.spec = spec
        self.backend = backend
        self.device = backend.device

    def inputs(self, frame_bgr: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> torch.Tensor:
        matrices = torch_ops.crop_matrices(centers, scales, self.spec.input_size)
        crops = torch_ops.warp_crops(torch_ops.upload_frame(frame_bgr, self.device), matrices, self.spec.input_size)
        return torch_ops.normalize_crops(crops, self.spec.mean, self.spec.std)

    def heatmaps(self, inputs: torch.Tensor, flip_test: bool) -> torch.Tensor:
        with torch.inference_mode():
            if not flip_test:
                heatmaps = self.backend.run_tensor(inputs).float()
            else:
                both = self.backend.run_tensor(torch.cat([inputs, inputs.flip(-1)])).float()
                heatmaps = torch_ops.fuse_flip(both[:len(inputs)], both[len(inputs):], self.spec.flip_order)
        self.spec.check_heatmaps(heatmaps.shape)
        return heatmaps

    def keypoints(self, heatmaps: torch.Tensor, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        spec = self.spec
        with torch.inference_mode():
            decoded = torch_ops.decode_heatmaps(heatmaps, centers, scales, spec.method, spec.rule,
                                                spec.blur_sigma)
        return decoded.cpu().numpy()

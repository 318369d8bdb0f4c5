"""Shared parts of the YOLO-family ONNX detectors: the onnxruntime session, letterboxing, and
telling the output layouts apart."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from engines.common.letterbox import letterbox
from engines.detectors.base import Detector
from engines.errors import UserError

__all__ = ["OnnxYoloDetector", "open_onnx_detector"]

class OnnxYoloDetector(Detector):
    """Base for single-stage YOLO ONNX exports run with onnxruntime, person class only."""

    centred_letterbox = False
    truncated_resize = False
    nms_on_clamped = False      # both families' NMS sees the boxes before they are clamped
    default_size = 640

    def __init__(self, path: str | Path, person_class: int = 0, threads: int | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",), **options):
        super().__init__(**options)
        from engines.runtimes.backends import ort_session

        path = Path(path)
        if not path.is_file():
            raise UserError(f"detector model not found: {path}")
        # Idle threads that spin after a call take the cores from the pose network that runs
        # next: Nano + Lite-HRNet-30 at 5 people took 74 ms a frame spinning, 63 ms not.
        self.session = ort_session(path, list(providers), int(threads) if threads else None, spin=False,
                                   what="detector")
        self.path = path
        self.person_class = int(person_class)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        if len(shape) != 4:
            raise UserError(f"{path.name}: expected an NCHW image input, got shape {shape}")
        h, w = shape[2], shape[3]
        self.input_size = (w if isinstance(w, int) else self.default_size,
                           h if isinstance(h, int) else self.default_size)
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """Letterboxed BGR uint8 image -> CHW float32 network input."""
        raise NotImplementedError

    def decode(self, output: np.ndarray) -> np.ndarray:
        """One image's raw output -> person boxes (K,5) in network-input pixels."""
        raise NotImplementedError

    def check_output(self, output: np.ndarray) -> None:
        raise NotImplementedError

    def inputs(self, frames) -> tuple[np.ndarray, list]:
        """(the network input batch, each frame's Letterbox) for BGR frames."""
        boxed = [letterbox(f, self.input_size, self.centred_letterbox, self.truncated_resize) for f in frames]
        return np.stack([self.preprocess(img) for img, _ in boxed]), [box for _, box in boxed]

    def candidates(self, frames):
        batch, letterboxes = self.inputs(frames)
        chunk = self.fixed_batch or len(batch)
        outputs = []
        for start in range(0, len(batch), chunk):
            out = self.session.run(None, {self.input_name: batch[start:start + chunk]})[0]
            self.check_output(out)
            outputs.extend(out)
        results = []
        for out, box in zip(outputs, letterboxes):
            people = self.decode(out)
            people[:, :4] = box.to_frame(people[:, :4])
            results.append(people)
        return results


def open_onnx_detector(path: str | Path, layout: str = "auto", **options) -> OnnxYoloDetector:
    """YOLOX ("yolox"), Ultralytics ("yolo") or, with "auto", whichever the output shape says."""
    from engines.detectors.ultralytics_yolo import UltralyticsDetector
    from engines.detectors.yolox import YoloxDetector

    if layout == "yolox":
        return YoloxDetector(path, **options)
    if layout == "yolo":
        return UltralyticsDetector(path, **options)
    if layout != "auto":
        raise UserError(f"unknown detector layout {layout!r}: use yolox or yolo")
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:
        raise UserError(f"not a readable ONNX file: {path}") from None
    dims = [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    if len(dims) == 3 and dims[1] and dims[2] and dims[1] < dims[2]:
        return UltralyticsDetector(path, **options)      # [1, 4+C, N]: channels before anchors
    return YoloxDetector(path, **options)

"""Shared parts of the YOLO-family ONNX detectors: the onnxruntime session, letterboxing, and
telling the output layouts apart."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from engines.detectors.base import Detector
from engines.errors import UserError

__all__ = ["Letterbox", "letterbox", "OnnxYoloDetector", "open_onnx_detector"]

PAD_VALUE = 114


class Letterbox:
    """How a frame was fitted into the network input: resized by `ratio`, then offset by `pad`."""

    def __init__(self, ratio: float, pad_xy: tuple[float, float]):
        self.ratio = ratio
        self.pad = np.array(pad_xy, dtype=np.float32)

    def to_frame(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Boxes from network-input pixels back to frame pixels."""
        return (boxes_xyxy - np.tile(self.pad, 2)) / self.ratio


def letterbox(frame: np.ndarray, size_wh: tuple[int, int], centred: bool) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping aspect so the frame fits `size_wh`, pad with grey 114: at the bottom/right
    (YOLOX) or evenly on both sides (Ultralytics, `centred`)."""
    h, w = frame.shape[:2]
    out_w, out_h = size_wh
    ratio = min(out_w / w, out_h / h)
    new_w, new_h = int(round(w * ratio)), int(round(h * ratio))
    resized = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((out_h, out_w, 3), PAD_VALUE, dtype=np.uint8)
    if centred:
        # Ultralytics splits an odd padding with the extra pixel at the bottom/right
        left, top = int(round((out_w - new_w) / 2 - 0.1)), int(round((out_h - new_h) / 2 - 0.1))
    else:
        left = top = 0
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas, Letterbox(ratio, (left, top))


class OnnxYoloDetector(Detector):
    """Base for single-stage YOLO ONNX exports run with onnxruntime, person class only."""

    centred_letterbox = False
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

    def candidates(self, frames):
        boxed = [letterbox(f, self.input_size, self.centred_letterbox) for f in frames]
        batch = np.stack([self.preprocess(img) for img, _ in boxed])
        chunk = self.fixed_batch or len(batch)
        outputs = []
        for start in range(0, len(batch), chunk):
            out = self.session.run(None, {self.input_name: batch[start:start + chunk]})[0]
            self.check_output(out)
            outputs.extend(out)
        results = []
        for out, (_, box) in zip(outputs, boxed):
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

"""Person detectors: frame(s) -> boxes (N,5) float32 x1, y1, x2, y2, score in frame pixels."""

from engines.detectors.base import Detector, validate_frame
from engines.detectors.nms import box_iou, nms

__all__ = ["Detector", "validate_frame", "nms", "box_iou", "load_detector"]


def load_detector(path_or_kind: str, **options) -> Detector:
    """A detector from "centernet" (bundled, trained here on synthetic people), "centernet:FILE"
    (a checkpoint of that network), "hog", or an ONNX file: "yolox:FILE" / "yolo:FILE" name the
    layout, a bare FILE is told apart by its output shape ([1,N,5+C] YOLOX, [1,4+C,N] Ultralytics)."""
    from engines.detectors.onnx_yolo import open_onnx_detector

    if path_or_kind == "centernet" or path_or_kind.startswith("centernet:"):
        from engines.detectors.centernet import load_centernet

        return load_centernet(path_or_kind.partition(":")[2] or None, **options)
    if path_or_kind == "hog":
        from engines.detectors.hog import HogDetector

        return HogDetector(**options)
    layout, _, path = path_or_kind.partition(":") if path_or_kind.startswith(("yolox:", "yolo:")) \
        else ("auto", "", path_or_kind)
    return open_onnx_detector(path, layout, **options)

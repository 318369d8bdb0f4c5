"""Person detectors: frame(s) -> boxes (N,5) float32 x1, y1, x2, y2, score in frame pixels."""

from pathlib import Path

from engines.detectors.base import Detector, validate_frame
from engines.detectors.nms import box_iou, nms
from engines.errors import UserError

__all__ = ["Detector", "validate_frame", "nms", "box_iou", "load_detector"]


def load_detector(name: str, device: str = "cpu", **options) -> Detector:
    """A person detector on `device` ("cpu", "cuda", "cuda:N"; HOG is CPU-only, ONNX detectors
    use onnxruntime's CUDA provider where it is installed) from
    - "centernet" (bundled, trained here on synthetic people) or "centernet:FILE" (a checkpoint
      of that network),
    - "hog" (OpenCV),
    - an ONNX file: "yolox:FILE" / "yolo:FILE" name the layout, a bare FILE is told apart by its
      output shape ([1,N,5+C] YOLOX, [1,4+C,N] Ultralytics),
    - a registry name (yolox-nano, ...), fetched on first use."""
    from engines.detectors.onnx_yolo import open_onnx_detector
    from engines.registry import REGISTRY, resolve

    kind, _, path = name.partition(":")
    if kind == "centernet":
        from engines.detectors.centernet import load_centernet

        return load_centernet(path or None, device=device, **options)
    if name == "hog":
        from engines.detectors.hog import HogDetector

        return HogDetector(**options)
    options.setdefault("providers", onnx_providers(device))
    if kind in ("yolox", "yolo") and path:
        return open_onnx_detector(path, kind, **options)
    if name not in REGISTRY and not Path(name).expanduser().is_file():
        fetched = ", ".join(n for n, entry in REGISTRY.items() if entry.kind == "detector")
        raise UserError(f"{name}: no such file and not a detector (centernet, hog, {fetched}, "
                        f"centernet:FILE, yolox:FILE, yolo:FILE or an ONNX file)")
    layout = REGISTRY[name].preset if name in REGISTRY else None
    return open_onnx_detector(resolve(name, "detector"), layout if layout in ("yolox", "yolo") else "auto",
                              **options)


def onnx_providers(device: str) -> list:
    """onnxruntime providers for `device`: CUDA first when asked for and installed, else CPU."""
    import onnxruntime as ort

    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        index = int(device.partition(":")[2] or 0)
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]

"""Person detectors: frame(s) -> boxes (N,5) float32 x1, y1, x2, y2, score in frame pixels."""

from pathlib import Path

from engines.detectors.base import Detector
from engines.detectors.nms import nms
from engines.errors import UserError

__all__ = ["Detector", "nms", "load_detector"]


def load_detector(name: str, device: str = "cpu", cache: str | None = None, **options) -> Detector:
    """A person detector on `device` ("cpu", "cuda", "cuda:N"; HOG is CPU-only, ONNX detectors
    use onnxruntime's CUDA provider where it is installed) from
    - a catalogue name (engines.models.catalogue): "centernet" (bundled, trained here on
      synthetic people), "hog" (OpenCV), "yolox-nano"/"yolox-tiny"/"yolox-s" (fetched on first use),
    - "centernet:FILE" (a checkpoint of the bundled network),
    - an ONNX file: "yolox:FILE" / "yolo:FILE" name the layout, a bare FILE is told apart by its
      output shape ([1,N,5+C] YOLOX, [1,4+C,N] Ultralytics)."""
    from engines.hub.cache import model_file
    from engines.models.catalogue import CATALOGUE, names

    model = CATALOGUE.get(name)
    if model is not None and model.task == "detector":
        kind, path, input_size = model.kind, model_file(model, cache), model.input_size
    else:
        (kind, _, path), input_size = name.partition(":"), None
    if kind == "centernet":
        from engines.detectors.centernet import BUNDLED_INPUT, load_centernet

        options.setdefault("input_size_wh", input_size or BUNDLED_INPUT)
        return load_centernet(path or None, device=device, **options)
    if kind == "hog":
        from engines.detectors.hog import HogDetector

        return HogDetector(**options)
    from engines.detectors.onnx_yolo import open_onnx_detector

    options.setdefault("providers", onnx_providers(device))
    if kind in ("yolox", "yolo") and path:
        return open_onnx_detector(path, kind, **options)
    if not Path(name).expanduser().is_file():
        raise UserError(f"{name}: no such file and not a detector ({', '.join(names('detector'))}, "
                        f"centernet:FILE, yolox:FILE, yolo:FILE or an ONNX file)")
    return open_onnx_detector(name, "auto", **options)


def onnx_providers(device: str) -> list:
    """onnxruntime providers for `device`: CUDA first when asked for and installed, else CPU."""
    import onnxruntime as ort

    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        index = int(device.partition(":")[2] or 0)
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]

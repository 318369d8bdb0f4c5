"""Backend "openvino": Intel's OpenVINO runtime on the CPU, from the same cached ONNX export as
onnxruntime (an optional extra: `pip install -e '.[openvino]'`).

It compiles the network once for a dynamic batch. A batch of two or more crops is split into as
many contiguous slices as the compiled model has streams, run at once by an asynchronous infer
queue (the counterpart of onnxruntime's parallel sessions here); one crop runs on one request
with every thread. Which runtime is faster depends on the CPU and the network: HRNet-W32 ran 2.1x
faster than on ONNX Runtime on one 2-core machine of this project and at the same speed on
another (AVX2 only), and Lite-HRNet 2-3x slower on both (README, "Real time on the CPU"), so
ONNX Runtime stays the CPU default and this backend is chosen with `--backend openvino`.
"""

from __future__ import annotations

import numpy as np

from engines.errors import UserError
from engines.runtimes.backends import BackendOptions, cached_onnx, register_backend, usable_cores

__all__ = ["OpenVinoBackend", "make_openvino_backend"]


def _openvino():
    try:
        import openvino
    except ImportError:
        raise UserError("the openvino backend needs OpenVINO: pip install -e '.[openvino]'") from None
    return openvino


class OpenVinoBackend:
    """A compiled OpenVINO model: numpy crops (B,3,H,W) float32 in, heatmaps out."""

    name = "openvino"

    def __init__(self, onnx_path, image_size: tuple[int, int], options: BackendOptions):
        ov = _openvino()
        width, height = image_size
        core = ov.Core()
        network = core.read_model(str(onnx_path))
        network.reshape([-1, 3, height, width])
        streams = options.workers or min(2, usable_cores())
        config = {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": str(streams)}
        if options.threads:
            config["INFERENCE_NUM_THREADS"] = str(options.threads)
        self.compiled = core.compile_model(network, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.queue = ov.AsyncInferQueue(self.compiled, streams) if streams > 1 else None
        self.streams = streams

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if len(images) < 2 or self.queue is None:
            return self.request.infer({0: images})[0].copy()
        slices = np.array_split(images, min(self.streams, len(images)))
        results = [None] * len(slices)

        def keep(request, index):
            results[index] = request.get_output_tensor(0).data.copy()

        self.queue.set_callback(keep)
        for index, part in enumerate(slices):
            self.queue.start_async({0: part}, index)
        self.queue.wait_all()
        return np.concatenate(results)


@register_backend("openvino")
def make_openvino_backend(model, image_size, options: BackendOptions) -> OpenVinoBackend:
    if options.device != "cpu":
        raise UserError(f"the openvino backend runs on the CPU, not {options.device}")
    if options.half or options.channels_last:
        raise UserError("half and channels_last are torch backend options")
    _openvino()  # before spending seconds on an export
    path = options.onnx_path or cached_onnx(model, image_size, options.cache_dir)
    return OpenVinoBackend(path, image_size, options)

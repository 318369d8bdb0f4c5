"""Inference backends: run a batch of normalised crops (B,3,H,W) float32 through a pose network
and return heatmaps (B,J,H/4,W/4) float32 as numpy.

Backends are looked up by name in a registry, so a new one (TensorRT, torch.compile, ...) is one
factory function decorated with `@register_backend("name")`; `PoseEstimator` and
`python -m engines bench` pick it up by name (a backend in its own module is also listed in
`BACKEND_MODULES`, so that module is imported on first use). A factory receives the network (eval mode, weights
loaded), the input size (w, h) and the `BackendOptions`, and returns a callable `Backend`.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from engines.runtimes.batching import BatchProfile, run_batches
from engines.errors import UserError

__all__ = ["Backend", "TensorBackend", "BackendOptions", "BACKENDS", "BACKEND_MODULES", "register_backend", "default_backend",
           "backend_names", "create_backend",
           "TorchBackend", "OnnxRuntimeBackend", "cached_onnx", "weights_digest", "default_cache_dir"]


class Backend(Protocol):
    name: str

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(B,3,H,W) float32 -> heatmaps (B,J,H/4,W/4) float32."""


class TensorBackend:
    """Base of the backends built on torch (torch, compile, tensorrt, tensorrt-onnx): they run
    tensors that stay on `device` (the estimator's on-device path calls `run_tensor` directly);
    the numpy call is that plus the copies."""

    name: str
    device: torch.device

    def run_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """Heatmaps (B,J,h,w) on the device for crops (B,3,H,W), B of any size."""
        raise NotImplementedError

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.run_tensor(torch.from_numpy(np.ascontiguousarray(images))).float().cpu().numpy()


@dataclass(frozen=True)
class BackendOptions:
    """Settings a backend may use; each backend rejects the ones it cannot honour."""

    device: str = "cpu"             # "cpu", "cuda", "cuda:1"
    half: bool = False              # fp16 weights and activations (torch; meant for CUDA)
    channels_last: bool = False     # NHWC memory layout (torch; often faster on GPUs)
    onnx_path: str | None = None    # existing ONNX file (onnxruntime); exported and cached if None
    threads: int | None = None      # intra-op threads in all (onnxruntime; None = its default)
    workers: int | None = None      # onnxruntime CPU sessions splitting a batch (None = cpu_workers())
    cache_dir: str | None = None    # where exported ONNX files (and TensorRT engines) are cached
    batch_profile: tuple[int, int, int] | None = None   # (min, opt, max) crops per call; None = 1, 8, 32
    # onnxruntime, main session: idle threads spin after a call. Back-to-back calls gain (Lite-HRNet-30
    # at batch 1: 13 ms, 18.5 without); a network called once a frame, with other work after it, slows that work
    spin: bool = True


BackendFactory = Callable[[torch.nn.Module, tuple[int, int], BackendOptions], Backend]
BACKENDS: dict[str, BackendFactory] = {}
# Backends living in their own module register themselves when that module is imported; it is
# imported on first request only (GPU-side imports are slow or absent on a CPU install).
BACKEND_MODULES = {"compile": "engines.runtimes.compile_backend", "tensorrt": "engines.runtimes.trt_backend",
                   "tensorrt-onnx": "engines.runtimes.trt_backend", "openvino": "engines.runtimes.openvino_backend"}


def register_backend(name: str) -> Callable[[BackendFactory], BackendFactory]:
    def register(factory: BackendFactory) -> BackendFactory:
        BACKENDS[name] = factory
        return factory
    return register


def backend_names() -> list[str]:
    """Every backend name that create_backend accepts."""
    return list(BACKENDS) + [name for name in BACKEND_MODULES if name not in BACKENDS]


def default_backend(device: str) -> str:
    """The fastest pose runtime measured per device: ONNX Runtime on the CPU (~2.5x torch eager
    there), torch on CUDA."""
    return "onnxruntime" if device == "cpu" else "torch"


def create_backend(name: str, model: torch.nn.Module, image_size: tuple[int, int],
                   options: BackendOptions = BackendOptions()) -> Backend:
    """The backend `name` running `model` on (w, h) inputs; UserError for unknown names."""
    if name not in BACKENDS and name in BACKEND_MODULES:
        importlib.import_module(BACKEND_MODULES[name])
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; choose one of: {', '.join(backend_names())}")
    return BACKENDS[name](model.eval(), tuple(image_size), options)


def torch_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device} requested but this torch build sees no CUDA GPU")
    return dev


class TorchBackend(TensorBackend):
    """PyTorch eager on CPU or CUDA, fp32 or fp16, optionally channels_last."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, options: BackendOptions):
        self.device = torch_device(options.device)
        self.dtype = torch.float16 if options.half else torch.float32
        self.memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        self.model = model.to(self.device, self.dtype, memory_format=self.memory_format).eval()
        self.profile = BatchProfile.of(options.batch_profile)  # bounds the memory of a crowded frame

    def run_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """Heatmaps for crops, in chunks of at most the batch profile's max."""
        x = images.to(self.device, self.dtype).contiguous(memory_format=self.memory_format)
        return run_batches(self.model, x, self.profile)


@register_backend("torch")
def make_torch_backend(model, image_size, options: BackendOptions) -> TorchBackend:
    return TorchBackend(model, options)


class OnnxRuntimeBackend:
    """onnxruntime with the CPU (or CUDA) execution provider on an exported ONNX file.

    On the CPU, a batch of two or more crops is split into contiguous slices run in parallel by
    `workers` more sessions, the threads divided between them; a single crop runs on the main
    session with all threads. Lite-HRNet is hundreds of small ops, and one session spreading
    each op over both cores of a 2-core machine waits on the slower core at every op: two
    single-thread sessions were 1.05-1.45x faster on batches of 5-8 here (README, "Measured here"),
    while one crop runs fastest on all cores. Each session holds its own copy of the weights."""

    name = "onnxruntime"

    def __init__(self, onnx_path: str | os.PathLike, image_size: tuple[int, int],
                 options: BackendOptions):
        device = check_onnxruntime_options(options)
        if device == "cpu":
            providers = ["CPUExecutionProvider"]
            workers = options.workers or cpu_workers()
        else:
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise UserError(f"onnxruntime here has no CUDA provider "
                                f"(has: {', '.join(ort.get_available_providers())})")
            index = int(device.partition(":")[2] or 0)
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
            workers = 1
        self.session = ort_session(onnx_path, providers, options.threads, options.spin)
        threads = max(1, (options.threads or usable_cores()) // workers)
        self.workers = [ort_session(onnx_path, providers, threads) for _ in range(workers)] if workers > 1 else []
        self.pool = ThreadPoolExecutor(workers - 1) if workers > 1 else None
        model_input = self.session.get_inputs()[0]
        height, width = model_input.shape[2:]  # ints, or names when the file left them dynamic
        if all(isinstance(v, int) for v in (width, height)) and (width, height) != tuple(image_size):
            raise UserError(f"ONNX model {onnx_path} takes {width}x{height} crops, "
                            f"the preset {image_size[0]}x{image_size[1]}")
        self.input_name = model_input.name
        self.output_name = self.session.get_outputs()[0].name

    def run_session(self, session, images: np.ndarray) -> np.ndarray:
        return session.run([self.output_name], {self.input_name: images})[0]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if len(images) < 2 or not self.workers:
            return self.run_session(self.session, images)
        slices = np.array_split(images, min(len(self.workers), len(images)))
        others = [self.pool.submit(self.run_session, session, part)
                  for session, part in zip(self.workers[1:], slices[1:])]
        first = self.run_session(self.workers[0], slices[0])  # this thread works too
        return np.concatenate([first] + [future.result() for future in others])


def ort_session(onnx_path: str | os.PathLike, providers: list, threads: int | None, spin: bool = True,
                what: str = "model"):
    """An InferenceSession; with `spin` off its idle threads sleep at once instead of spinning.
    A file onnxruntime cannot load is a UserError naming it as an ONNX `what`."""
    import onnxruntime as ort

    session_options = ort.SessionOptions()
    if threads:
        session_options.intra_op_num_threads = threads
    if not spin:
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(onnx_path), session_options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise UserError(f"cannot load ONNX {what} {onnx_path}: {str(exc).splitlines()[0][:200]}") from None


def usable_cores() -> int:
    """CPU cores this process may run on (a container's limit, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_workers() -> int:
    """Default parallel ONNX Runtime sessions on the CPU: two wherever there are two cores."""
    return 2 if usable_cores() >= 2 else 1


def check_onnxruntime_options(options: BackendOptions) -> str:
    """The device name, after refusing the options onnxruntime cannot honour."""
    if options.half:
        raise UserError("half precision is available with the torch backend, not onnxruntime")
    if options.channels_last:
        raise UserError("channels_last is a torch backend option")
    device = options.device
    on_cuda = device == "cuda" or device.startswith("cuda:")
    if device != "cpu" and not on_cuda:
        raise UserError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    if options.workers is not None and options.workers < 1:
        raise UserError(f"workers must be >= 1, not {options.workers}")
    if on_cuda and (options.workers or 1) > 1:
        raise UserError("workers (parallel sessions) is an onnxruntime CPU option")
    return device


@register_backend("onnxruntime")
def make_onnxruntime_backend(model, image_size, options: BackendOptions) -> OnnxRuntimeBackend:
    check_onnxruntime_options(options)  # before spending seconds on an export
    path = options.onnx_path or cached_onnx(model, image_size, options.cache_dir)
    return OnnxRuntimeBackend(path, image_size, options)


def default_cache_dir() -> Path:
    """The model cache of engines.hub.cache (its `onnx/` and `tensorrt/` sub-folders hold exports)."""
    from engines.hub.cache import cache_dir

    return cache_dir()


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of the state_dict (names, shapes, values): same digest <=> same network."""
    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def cached_onnx(model: torch.nn.Module, image_size: tuple[int, int],
                cache_dir: str | os.PathLike | None = None) -> Path:
    """ONNX export of `model`, reused while the weights and input size are unchanged (the file
    name holds a hash of both; exporting takes seconds, loading milliseconds)."""
    from engines.runtimes.export import export_onnx

    digest = hashlib.sha256(f"{image_size[0]}x{image_size[1]}:{weights_digest(model)}".encode())
    folder = Path(cache_dir) if cache_dir else default_cache_dir() / "onnx"
    name = type(model).__name__.lower()   # posehighresolutionnet, litehrnetpose, packedheads (a detector)
    path = folder / f"{name}_{image_size[0]}x{image_size[1]}_{digest.hexdigest()[:16]}.onnx"
    if not path.is_file():
        export_onnx(model, image_size, path)
    return path

"""TensorRT backends with a dynamic batch and an on-disk engine cache.

Two ways to an engine, both registered as backends:
- "tensorrt": torch-tensorrt's dynamo path (torch.export -> torch_tensorrt.dynamo.compile), the
  compiled program saved with torch_tensorrt.save and reloaded with torch_tensorrt.load;
- "tensorrt-onnx": a plan built from the exported ONNX file with the tensorrt Python API
  (OnnxParser, one optimization profile, build_serialized_network), run by tensor addresses.

Both take FP16 (`half=True`) or FP32 and a batch profile (min 1, opt 8, max 32 by default). Building
takes minutes, so engines are cached on disk under a key of everything that makes one engine
unusable for another: weights, input size, precision, batch profile, GPU model and compute
capability, TensorRT version. A damaged or stale entry is rebuilt with a warning; an unwritable
cache folder means running uncached, with one warning. A batch larger than the profile is split.

TensorRT is an optional extra (`pip install hrnet-pose-tracker[tensorrt]`); nothing here imports
it until a TensorRT backend is created.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from engines.common.files import atomic_path, write_json_atomic
from engines.runtimes.backends import (BackendOptions, TensorBackend, cached_onnx, default_cache_dir, register_backend,
                              torch_device, weights_digest)
from engines.runtimes.batching import BatchProfile, out_of_memory_error, run_batches
from engines.hub.download import sha256_of
from engines.errors import UserError

__all__ = ["EngineCache", "EngineCacheWarning", "TensorRTBackend", "require_tensorrt", "build_plan",
           "make_tensorrt_backend", "make_tensorrt_onnx_backend", "INSTALL_HINT"]

INSTALL_HINT = "pip install hrnet-pose-tracker[tensorrt]"
CACHE_FORMAT_VERSION = 1


class EngineCacheWarning(UserWarning):
    """A cache problem the backend worked around (rebuilt entry, caching disabled)."""


_warned_unwritable: set[str] = set()  # one warning per folder and process, however many backends


class EngineCache:
    """Engines on disk, one file per key plus a JSON sidecar holding the key's fields.

    An entry is used only when its sidecar equals the expected fields exactly and the loader
    accepts the file; otherwise it is deleted and rebuilt, with a warning. Files are written
    atomically, the sidecar last, so an interrupted write leaves no entry that looks valid.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.enabled = self._usable()

    def _usable(self) -> bool:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.folder):
                pass
            return True
        except OSError as exc:
            self._warn_unwritable(exc)
            return False

    def _warn_unwritable(self, exc: OSError) -> None:
        if str(self.folder) not in _warned_unwritable:
            _warned_unwritable.add(str(self.folder))
            warnings.warn(f"engine cache folder {self.folder} is not writable ({exc.strerror or exc}); "
                          f"engines built now are not cached, so the next start builds them again",
                          EngineCacheWarning, stacklevel=3)

    @staticmethod
    def key(fields: dict) -> str:
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]

    def paths(self, fields: dict, suffix: str) -> tuple[Path, Path]:
        stem = f"{fields.get('format', 'engine')}_{self.key(fields)}"
        return self.folder / f"{stem}{suffix}", self.folder / f"{stem}.json"

    def load(self, fields: dict, suffix: str, loader: Callable[[Path], Any]) -> Any | None:
        """The loaded engine, or None when there is no usable entry."""
        path, sidecar = self.paths(fields, suffix)
        if not path.is_file():
            return None
        try:
            recorded = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = None
        if recorded != fields:
            self._discard(path, sidecar, "is stale (its recorded settings differ or are missing)")
            return None
        try:
            return loader(path)
        except Exception as exc:  # any failure to deserialise means the file cannot be used
            self._discard(path, sidecar, f"could not be loaded ({type(exc).__name__}: {str(exc)[:120]})")
            return None

    def store(self, fields: dict, suffix: str, writer: Callable[[Path], None]) -> Path | None:
        """Write an entry with writer(temporary_path); None when caching is off or fails."""
        if not self.enabled:
            return None
        path, sidecar = self.paths(fields, suffix)
        try:
            with atomic_path(path) as tmp:
                writer(tmp)
            write_json_atomic(sidecar, fields, indent=1)
        except OSError as exc:
            self.enabled = False
            self._warn_unwritable(exc)
            return None
        return path

    def get_or_build(self, fields: dict, suffix: str, loader: Callable[[Path], Any],
                     build: Callable[[], Any], writer: Callable[[Any, Path], None]) -> Any:
        """A cached engine if usable, else build(), stored with writer(engine, path)."""
        engine = self.load(fields, suffix, loader)  # a read-only cache can still hold engines
        if engine is None:
            engine = build()
            self.store(fields, suffix, lambda tmp: writer(engine, tmp))
        return engine

    def _discard(self, path: Path, sidecar: Path, why: str) -> None:
        warnings.warn(f"cached engine {path.name} {why}; rebuilding it", EngineCacheWarning, stacklevel=4)
        for stale in (path, sidecar):
            try:
                stale.unlink(missing_ok=True)
            except OSError:
                pass  # read-only cache: the rebuilt engine then simply is not stored


def require_tensorrt(module: str = "tensorrt"):
    """Import `module` (tensorrt or torch_tensorrt) or raise a UserError naming the extra."""
    try:
        return importlib.import_module(module)
    except (ImportError, OSError) as exc:  # OSError: the package is there, its CUDA libraries not
        raise UserError(f"TensorRT backends need {module}, which cannot be imported "
                        f"({str(exc).splitlines()[0][:120]}); install it with: {INSTALL_HINT}") from None


def gpu_fields(device: torch.device) -> dict:
    major, minor = torch.cuda.get_device_capability(device)
    return {"gpu": torch.cuda.get_device_name(device), "compute_capability": f"{major}.{minor}"}


class TensorRTBackend(TensorBackend):
    """Runs a TensorRT engine (any callable CUDA tensor -> CUDA tensor) on batches of any size."""

    def __init__(self, name: str, run: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
                 input_dtype: torch.dtype, profile: BatchProfile):
        self.name = name
        self.run = run
        self.device = device
        self.input_dtype = input_dtype
        self.profile = profile

    def run_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """Heatmaps (B,J,h,w) on the GPU for a batch (B,3,H,W) already there (GPU pre-processing)."""
        return run_batches(self.run, images.to(self.device, self.input_dtype).contiguous(), self.profile)


def _cuda_device(options: BackendOptions) -> torch.device:
    device = torch_device(options.device)
    if device.type != "cuda":
        raise UserError(f"TensorRT runs on NVIDIA GPUs: use device cuda, not {options.device}")
    if options.channels_last:
        raise UserError("channels_last is a torch backend option; TensorRT picks its own layouts")
    return device


def _engine_folder(options: BackendOptions) -> Path:
    return Path(options.cache_dir) / "tensorrt" if options.cache_dir else default_cache_dir() / "tensorrt"


@register_backend("tensorrt")
def make_tensorrt_backend(model: torch.nn.Module, image_size: tuple[int, int],
                          options: BackendOptions) -> TensorRTBackend:
    """torch-tensorrt (dynamo) engine of `model`, from the cache when one fits."""
    torch_trt = require_tensorrt("torch_tensorrt")
    trt = require_tensorrt("tensorrt")
    device = _cuda_device(options)
    profile = BatchProfile.of(options.batch_profile)
    dtype = torch.float16 if options.half else torch.float32
    fields = {"format": "torch_tensorrt", "version": CACHE_FORMAT_VERSION,
              "weights": weights_digest(model), "input_size": list(image_size),
              "precision": "fp16" if options.half else "fp32",
              "batch_profile": [profile.min, profile.opt, profile.max], **gpu_fields(device),
              "tensorrt": trt.__version__, "torch_tensorrt": torch_trt.__version__,
              "torch": torch.__version__}
    minimum, optimum, maximum = profile.shapes(image_size)
    example = torch.zeros(optimum, device=device, dtype=dtype)
    dynamic_shapes = ({0: torch.export.Dim("batch", min=profile.min, max=profile.max)},)

    def build():
        # explicit typing: the network runs in the dtype of its weights and input, so FP16 is
        # the model cast to half (torch-tensorrt deprecates enabled_precisions for this)
        network = model.to(device, dtype).eval()
        try:
            with torch.no_grad():
                exported = torch.export.export(network, (example,), dynamic_shapes=dynamic_shapes)
                return torch_trt.dynamo.compile(
                    exported, inputs=[torch_trt.Input(min_shape=minimum, opt_shape=optimum,
                                                      max_shape=maximum, dtype=dtype)],
                    use_explicit_typing=True, device=device)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise out_of_memory_error(profile.max, profile) from None

    def save(compiled, path: Path) -> None:
        torch_trt.save(compiled, str(path), output_format="exported_program", arg_inputs=[example],
                       dynamic_shapes=dynamic_shapes)

    def load(path: Path):
        return torch_trt.load(str(path)).module()

    with torch.cuda.device(device):
        engine = EngineCache(_engine_folder(options)).get_or_build(fields, ".ep", load, build, save)
    return TensorRTBackend("tensorrt", engine, device, dtype, profile)


def build_plan(onnx_path: str | os.PathLike, image_size: tuple[int, int], profile: BatchProfile,
               half: bool) -> bytes:
    """A serialized TensorRT engine (plan) for an ONNX pose network with a dynamic batch axis."""
    trt = require_tensorrt("tensorrt")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"TensorRT cannot parse {onnx_path}: {errors[:300]}")
    config = builder.create_builder_config()
    if half:
        config.set_flag(trt.BuilderFlag.FP16)
    optimization = builder.create_optimization_profile()
    optimization.set_shape(network.get_input(0).name, *profile.shapes(image_size))
    config.add_optimization_profile(optimization)
    plan = builder.build_serialized_network(network, config)
    if plan is None:  # the reason went to the TensorRT log (stderr)
        raise UserError(f"TensorRT could not build an engine from {onnx_path} (see its log above); "
                        f"if it ran out of GPU memory, use a smaller max batch than {profile.max}")
    return bytes(plan)


class PlanRunner:
    """A deserialized plan with one execution context, run on the current CUDA stream."""

    def __init__(self, plan: bytes, device: torch.device):
        trt = require_tensorrt("tensorrt")
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise ValueError("TensorRT could not deserialize the plan (damaged, or another version)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {name: self.engine.get_tensor_mode(name) for name in names}
        self.input_name = next(n for n in names if modes[n] == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names if modes[n] == trt.TensorIOMode.OUTPUT)
        torch_dtypes = {trt.float32: torch.float32, trt.float16: torch.float16}
        self.input_dtype = torch_dtypes[self.engine.get_tensor_dtype(self.input_name)]
        self.output_dtype = torch_dtypes[self.engine.get_tensor_dtype(self.output_name)]
        self.device = device

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.input_dtype).contiguous()
        self.context.set_input_shape(self.input_name, tuple(images.shape))
        output = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)),
                             dtype=self.output_dtype, device=self.device)
        self.context.set_tensor_address(self.input_name, images.data_ptr())
        self.context.set_tensor_address(self.output_name, output.data_ptr())
        if not self.context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise RuntimeError("TensorRT execution failed (see its log above)")
        return output


@register_backend("tensorrt-onnx")
def make_tensorrt_onnx_backend(model: torch.nn.Module, image_size: tuple[int, int],
                               options: BackendOptions) -> TensorRTBackend:
    """TensorRT plan built from the ONNX export (or options.onnx_path), from the cache when one fits."""
    trt = require_tensorrt("tensorrt")
    device = _cuda_device(options)
    profile = BatchProfile.of(options.batch_profile)
    onnx_path = Path(options.onnx_path) if options.onnx_path else cached_onnx(model, image_size,
                                                                              options.cache_dir)
    fields = {"format": "tensorrt_plan", "version": CACHE_FORMAT_VERSION,
              "weights": sha256_of(onnx_path), "input_size": list(image_size),
              "precision": "fp16" if options.half else "fp32",
              "batch_profile": [profile.min, profile.opt, profile.max], **gpu_fields(device),
              "tensorrt": trt.__version__}
    with torch.cuda.device(device):
        runner = EngineCache(_engine_folder(options)).get_or_build(
            fields, ".plan", lambda path: PlanRunner(path.read_bytes(), device),
            lambda: PlanRunner(build_plan(onnx_path, image_size, profile, options.half), device),
            lambda built, tmp: tmp.write_bytes(bytes(built.engine.serialize())))
    return TensorRTBackend("tensorrt-onnx", runner, device, runner.input_dtype, profile)

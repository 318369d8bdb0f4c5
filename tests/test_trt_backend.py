"""TensorRT backends: batch profile, chunking, engine cache and error messages on CPU; real engine
builds are marked tensorrt (they need TensorRT, torch-tensorrt and a CUDA GPU)."""

import importlib.util
import sys
import warnings

import numpy as np
import pytest
import torch

from engines.runtimes import trt_backend
from engines.runtimes.backends import BackendOptions, create_backend, weights_digest
from engines.runtimes.batching import BatchProfile
from engines.errors import UserError
from engines.runtimes.trt_backend import EngineCache, EngineCacheWarning

HAVE_TENSORRT = all(importlib.util.find_spec(m) for m in ("tensorrt", "torch_tensorrt"))

FIELDS = {"format": "tensorrt_plan", "version": 1, "weights": "ab" * 32, "input_size": [192, 256],
          "precision": "fp16", "batch_profile": [1, 8, 32], "gpu": "NVIDIA H100 80GB HBM3",
          "compute_capability": "9.0", "tensorrt": "10.9.0"}


def test_weights_digest_follows_the_weights():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 4, 3)
    same = torch.nn.Conv2d(3, 4, 3)
    same.load_state_dict(model.state_dict())
    assert weights_digest(model) == weights_digest(same)
    with torch.no_grad():
        same.bias[0] += 1e-3
    assert weights_digest(model) != weights_digest(same)


def write_bytes(engine, path):
    path.write_bytes(engine)


def read_engine(path):
    data = path.read_bytes()
    if not data.startswith(b"ENGINE"):
        raise ValueError("not an engine")
    return data


class Builds:
    def __init__(self, payload=b"ENGINE-1"):
        self.payload, self.count = payload, 0

    def __call__(self):
        self.count += 1
        return self.payload


def test_cache_builds_once_and_reuses_at_the_next_start(tmp_path):
    build = Builds()
    first = EngineCache(tmp_path).get_or_build(FIELDS, ".plan", read_engine, build, write_bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean hit warns about nothing
        second = EngineCache(tmp_path).get_or_build(FIELDS, ".plan", read_engine, build, write_bytes)
    assert first == second == b"ENGINE-1" and build.count == 1
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".plan"]  # no temp files left


@pytest.mark.parametrize("field, value", [("weights", "cd" * 32), ("input_size", [288, 384]),
                                          ("precision", "fp32"), ("batch_profile", [1, 8, 64]),
                                          ("gpu", "NVIDIA GeForce RTX 4090"),
                                          ("compute_capability", "8.9"), ("tensorrt", "10.10.0")])
def test_every_key_field_selects_its_own_engine(tmp_path, field, value):
    cache = EngineCache(tmp_path)
    build = Builds()
    cache.get_or_build(FIELDS, ".plan", read_engine, build, write_bytes)
    cache.get_or_build({**FIELDS, field: value}, ".plan", read_engine, build, write_bytes)
    assert build.count == 2
    assert cache.paths(FIELDS, ".plan")[0] != cache.paths({**FIELDS, field: value}, ".plan")[0]


def test_corrupt_entry_is_rebuilt_with_a_warning(tmp_path):
    cache = EngineCache(tmp_path)
    cache.get_or_build(FIELDS, ".plan", read_engine, Builds(), write_bytes)
    path, _ = cache.paths(FIELDS, ".plan")
    path.write_bytes(b"\x00garbage, half a file")
    rebuild = Builds(b"ENGINE-2")
    with pytest.warns(EngineCacheWarning, match="could not be loaded.*rebuilding"):
        engine = EngineCache(tmp_path).get_or_build(FIELDS, ".plan", read_engine, rebuild, write_bytes)
    assert engine == b"ENGINE-2" and rebuild.count == 1
    assert path.read_bytes() == b"ENGINE-2"  # the rebuilt engine replaced the damaged one


@pytest.mark.parametrize("sidecar", ['{"tensorrt": "8.6.1"}', "not json", None])
def test_stale_or_unrecorded_entry_is_rebuilt_with_a_warning(tmp_path, sidecar):
    cache = EngineCache(tmp_path)
    cache.get_or_build(FIELDS, ".plan", read_engine, Builds(), write_bytes)
    _, meta = cache.paths(FIELDS, ".plan")
    if sidecar is None:
        meta.unlink()  # e.g. interrupted between the engine and its sidecar
    else:
        meta.write_text(sidecar)
    rebuild = Builds(b"ENGINE-3")
    with pytest.warns(EngineCacheWarning, match="stale.*rebuilding"):
        engine = cache.get_or_build(FIELDS, ".plan", read_engine, rebuild, write_bytes)
    assert engine == b"ENGINE-3" and rebuild.count == 1
    assert EngineCache(tmp_path).load(FIELDS, ".plan", read_engine) == b"ENGINE-3"


def test_unwritable_cache_folder_runs_uncached_and_warns_once(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    folder = blocker / "engines"  # cannot be created, even by root
    build = Builds()
    with pytest.warns(EngineCacheWarning, match="not writable") as record:
        engines = [EngineCache(folder).get_or_build(FIELDS, ".plan", read_engine, build, write_bytes)
                   for _ in range(3)]
    assert engines == [b"ENGINE-1"] * 3 and build.count == 3  # works, just without a cache
    assert len([w for w in record if issubclass(w.category, EngineCacheWarning)]) == 1


def test_missing_tensorrt_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)  # import now fails as if not installed
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    model = torch.nn.Conv2d(3, 17, 1)
    for name in ("tensorrt", "tensorrt-onnx"):
        with pytest.raises(UserError, match=r"pip install hrnet-pose-tracker\[tensorrt\]"):
            create_backend(name, model, (192, 256), BackendOptions(device="cuda", half=True))


def test_out_of_memory_is_a_clear_message_suggesting_a_smaller_max_batch():
    def exhausted(_):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    backend = trt_backend.TensorRTBackend("tensorrt", exhausted, torch.device("cpu"), torch.float32,
                                          BatchProfile(1, 8, 32))
    with pytest.raises(UserError, match=r"out of GPU memory.*smaller max batch, e\.g\. --batch-profile 1,8,16"):
        backend(np.zeros((40, 3, 8, 8), dtype=np.float32))


def tiny_pose_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(16, 17, 3, stride=2, padding=1))


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.skipif(not (HAVE_TENSORRT and torch.cuda.is_available()),
                    reason="needs tensorrt + torch_tensorrt (pip install hrnet-pose-tracker[tensorrt]) "
                    "and a CUDA GPU")
@pytest.mark.parametrize("name", ["tensorrt", "tensorrt-onnx"])
@pytest.mark.parametrize("half", [False, True])
def test_engine_matches_torch_and_is_reused_from_the_cache(name, half, tmp_path):
    model = tiny_pose_net()
    images = np.random.default_rng(0).standard_normal((40, 3, 64, 48), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(images)).numpy()
    options = BackendOptions(device="cuda", half=half, cache_dir=str(tmp_path))
    backend = create_backend(name, model, (48, 64), options)
    got = backend(images)  # 40 > max 32: split
    np.testing.assert_allclose(got, expected, atol=5e-2 if half else 1e-3)
    cached = sorted((tmp_path / "tensorrt").glob("*"))
    assert cached
    with warnings.catch_warnings():
        warnings.simplefilter("error", EngineCacheWarning)
        again = create_backend(name, tiny_pose_net(), (48, 64), options)
    np.testing.assert_allclose(again(images[:3]), got[:3], atol=1e-3)
    assert sorted((tmp_path / "tensorrt").glob("*")) == cached  # reused, nothing new built


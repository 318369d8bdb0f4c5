"""Backend "compile": bucket padding and splitting, and the compiled network against eager torch
(CPU inductor here; CUDA graphs and FP16 in the gpu-marked test)."""

import numpy as np
import pytest
import torch

from engines.runtimes.backends import BackendOptions, create_backend
from engines.runtimes.compile_backend import CompileBackend, batch_buckets, bucket_for
from engines.runtimes.batching import BatchProfile


def tiny_pose_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.BatchNorm2d(8),
                               torch.nn.ReLU(), torch.nn.Conv2d(8, 17, 3, stride=2, padding=1)).eval()


@pytest.mark.parametrize("profile, expected", [((1, 8, 32), (1, 2, 4, 8, 16, 32)),
                                               ((1, 8, 24), (1, 2, 4, 8, 16, 24)),
                                               ((3, 4, 8), (4, 8)), ((1, 1, 1), (1,))])
def test_buckets_are_powers_of_two_up_to_the_max(profile, expected):
    assert batch_buckets(BatchProfile(*profile)) == expected


def test_bucket_for_rounds_up():
    buckets = (1, 2, 4, 8, 16, 32)
    assert [bucket_for(n, buckets) for n in (1, 2, 3, 5, 8, 9, 31, 32)] == [1, 2, 4, 8, 8, 16, 32, 32]


def test_batches_are_padded_to_buckets_and_split_above_the_largest():
    backend = CompileBackend(tiny_pose_net(), BackendOptions(), BatchProfile(1, 8, 32))
    seen = []

    def recording(x):  # stands in for the compiled network: only the shapes matter here
        seen.append(len(x))
        return x[:, :1] * 3

    backend.compiled = recording
    images = np.random.default_rng(0).standard_normal((75, 3, 8, 8), dtype=np.float32)
    out = backend(images)
    assert seen == [32, 32, 16]  # 75 = 32 + 32 + 11, 11 padded to 16: only bucket shapes ever run
    np.testing.assert_allclose(out, images[:, :1] * 3, rtol=1e-6)
    seen.clear()
    assert backend(images[:0]).shape == (0, 1, 8, 8) and seen == [1]


def test_compiled_network_matches_eager_on_cpu():
    model = tiny_pose_net()
    images = np.random.default_rng(1).standard_normal((3, 3, 32, 24), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(images)).numpy()
    backend = create_backend("compile", model, (24, 32), BackendOptions(device="cpu"))
    # 3 -> bucket 4; then 1 -> bucket 1: two compilations, both reused afterwards
    np.testing.assert_allclose(backend(images), expected, atol=1e-5)
    np.testing.assert_allclose(backend(images[:1]), expected[:1], atol=1e-5)
    np.testing.assert_allclose(backend(images[1:]), expected[1:], atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graphs_fp16_match_eager_and_outputs_survive_the_next_replay():
    model = tiny_pose_net()
    images = np.random.default_rng(2).standard_normal((40, 3, 64, 48), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(images)).numpy()
    backend = create_backend("compile", model, (48, 64), BackendOptions(device="cuda", half=True))
    first = backend.run_tensor(torch.from_numpy(images[:5]).cuda())
    second = backend.run_tensor(torch.from_numpy(images[5:10]).cuda())  # same bucket: replay
    np.testing.assert_allclose(first.float().cpu().numpy(), expected[:5], atol=3e-2)
    np.testing.assert_allclose(second.float().cpu().numpy(), expected[5:10], atol=3e-2)
    np.testing.assert_allclose(backend(images), expected, atol=3e-2)  # 40 = 32 + 8

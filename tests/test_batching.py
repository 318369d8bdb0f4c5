"""Bounded batches: the batch profile, splitting and padding, the torch backend's chunks, and the
out-of-memory message every torch-based backend gives."""

import numpy as np
import pytest
import torch

from engines.runtimes.backends import BackendOptions, TorchBackend
from engines.runtimes.batching import BatchProfile, run_in_chunks
from engines.errors import UserError


@pytest.mark.parametrize("text, expected", [("1,8,32", (1, 8, 32)), ("4,4,4", (4, 4, 4))])
def test_batch_profile_parses(text, expected):
    profile = BatchProfile.parse(text)
    assert (profile.min, profile.opt, profile.max) == expected
    assert profile.shapes((192, 256))[2] == (expected[2], 3, 256, 192)


@pytest.mark.parametrize("text", ["8,1,32", "0,8,32", "1,8", "a,b,c", "1,64,32"])
def test_bad_batch_profile_is_a_user_error(text):
    with pytest.raises(UserError, match="batch profile"):
        BatchProfile.parse(text)


class RecordingEngine:
    """Stands in for an engine in the splitting tests: records batch sizes, doubles its input,
    and refuses batches outside the profile as a real engine would."""

    def __init__(self, profile):
        self.profile, self.batches = profile, []

    def __call__(self, x):
        assert self.profile.min <= len(x) <= self.profile.max
        self.batches.append(len(x))
        return x * 2


@pytest.mark.parametrize("count, expected_batches", [(70, [32, 32, 6]), (32, [32]), (1, [1]),
                                                     (0, [])])
def test_batches_larger_than_the_profile_are_split(count, expected_batches):
    profile = BatchProfile(1, 8, 32)
    engine = RecordingEngine(profile)
    images = torch.arange(count * 2, dtype=torch.float32).reshape(count, 2)
    out = run_in_chunks(engine, images, profile)
    assert engine.batches == (expected_batches or [1])  # an empty batch costs one padded call
    torch.testing.assert_close(out, images * 2)


def test_batches_below_the_profile_minimum_are_padded_and_trimmed():
    profile = BatchProfile(4, 4, 8)
    engine = RecordingEngine(profile)
    images = torch.randn(10, 3)
    out = run_in_chunks(engine, images, profile)
    assert engine.batches == [8, 4]  # 10 = 8 + 2, the 2 padded to 4
    torch.testing.assert_close(out, images * 2)


class RecordingNet(torch.nn.Module):
    """Records the batch sizes it is called with; returns the first channel."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, x):
        self.batches.append(len(x))
        return x[:, :1]


def test_torch_backend_runs_a_crowd_in_chunks_of_the_profile_max():
    net = RecordingNet()
    backend = TorchBackend(net, BackendOptions(batch_profile=(1, 4, 4)))
    images = np.random.default_rng(0).standard_normal((10, 3, 8, 8), dtype=np.float32)
    np.testing.assert_array_equal(backend(images), images[:, :1])
    assert net.batches == [4, 4, 2]


class ExhaustedNet(torch.nn.Module):
    def forward(self, x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_torch_backend_out_of_memory_is_a_clear_message():
    backend = TorchBackend(ExhaustedNet(), BackendOptions())
    with pytest.raises(UserError, match=r"out of GPU memory with a batch of 32 crops.*--batch-profile 1,8,16"):
        backend(np.zeros((40, 3, 8, 8), dtype=np.float32))

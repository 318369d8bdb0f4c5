"""Backend "compile": torch.compile (inductor) with CUDA graphs and FP16, for GPUs without TensorRT.

CUDA graphs replay fixed shapes, and every new batch size means another compilation and another
graph. So batches are padded up to a few fixed sizes (powers of two up to the profile's max,
1/2/4/8/16/32 by default) and larger batches are split: at most six graphs, each reused for every
frame whose number of people rounds up to it. On CPU the same code runs without graphs.
"""

from __future__ import annotations

import torch

from engines.runtimes.backends import BackendOptions, TensorBackend, register_backend, torch_device
from engines.runtimes.batching import BatchProfile, run_batches

__all__ = ["CompileBackend", "batch_buckets", "bucket_for", "make_compile_backend"]


def batch_buckets(profile: BatchProfile) -> tuple[int, ...]:
    """Powers of two from profile.min's up to profile.max, and profile.max itself."""
    sizes, size = [], 1
    while size < profile.max:
        if size >= profile.min:
            sizes.append(size)
        size *= 2
    return tuple(sizes + [profile.max])


def bucket_for(count: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket holding `count` crops (count <= buckets[-1])."""
    return next(size for size in buckets if size >= count)


class CompileBackend(TensorBackend):
    """torch.compile'd network; mode "reduce-overhead" captures CUDA graphs on CUDA."""

    name = "compile"

    def __init__(self, model: torch.nn.Module, options: BackendOptions,
                 profile: BatchProfile = BatchProfile()):
        self.device = torch_device(options.device)
        self.dtype = torch.float16 if options.half else torch.float32
        self.memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        self.profile = profile
        self.buckets = batch_buckets(profile)
        network = model.to(self.device, self.dtype, memory_format=self.memory_format).eval()
        self.cuda_graphs = self.device.type == "cuda"
        # dynamic=False: one static graph per bucket, which is what CUDA graphs need anyway
        self.compiled = torch.compile(network, mode="reduce-overhead" if self.cuda_graphs else "default",
                                      dynamic=False, fullgraph=True)

    def _run_bucket(self, chunk: torch.Tensor) -> torch.Tensor:
        count = len(chunk)
        size = bucket_for(count, self.buckets)
        if size > count:
            chunk = torch.cat([chunk, chunk.new_zeros((size - count, *chunk.shape[1:]))])
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # each call is a new inference step
        # the graph's output buffer is overwritten by the next replay: copy our rows out
        return self.compiled(chunk.contiguous(memory_format=self.memory_format))[:count].clone()

    def run_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """Heatmaps (B,J,h,w) on the device for crops (B,3,H,W), B of any size (chunks of at most
        the largest bucket, each padded up to a bucket)."""
        return run_batches(self._run_bucket, images.to(self.device, self.dtype), self.profile)


@register_backend("compile")
def make_compile_backend(model: torch.nn.Module, image_size: tuple[int, int],
                         options: BackendOptions) -> CompileBackend:
    return CompileBackend(model, options, BatchProfile.of(options.batch_profile))

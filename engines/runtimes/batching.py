"""Crops in batches of bounded size: the batch profile (min, opt, max) of the GPU backends, larger
batches split into chunks, and one clear message when the GPU runs out of memory anyway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from engines.errors import UserError

__all__ = ["BatchProfile", "run_in_chunks", "run_batches", "out_of_memory_error"]


@dataclass(frozen=True)
class BatchProfile:
    """Batch sizes an engine accepts (min..max) and is tuned for (opt)."""

    min: int = 1
    opt: int = 8
    max: int = 32

    def __post_init__(self):
        if not 1 <= self.min <= self.opt <= self.max:
            raise UserError(f"batch profile must satisfy 1 <= min <= opt <= max, "
                            f"got {self.min},{self.opt},{self.max}")

    @classmethod
    def parse(cls, text: str) -> "BatchProfile":
        """'1,8,32' -> BatchProfile(1, 8, 32)."""
        try:
            values = [int(v) for v in text.split(",")]
        except ValueError:
            values = []
        if len(values) != 3:
            raise UserError(f"batch profile is three integers min,opt,max (e.g. 1,8,32), got {text!r}")
        return cls(*values)

    @classmethod
    def of(cls, values: tuple[int, int, int] | None) -> "BatchProfile":
        """BatchProfile(*values), or the default 1/8/32 for None (BackendOptions.batch_profile)."""
        return cls(*values) if values else cls()

    def shapes(self, image_size: tuple[int, int]) -> tuple[tuple[int, ...], ...]:
        """(min, opt, max) input shapes (B,3,H,W) for (w, h) crops."""
        width, height = image_size
        return tuple((batch, 3, height, width) for batch in (self.min, self.opt, self.max))


def run_in_chunks(run: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                  profile: BatchProfile) -> torch.Tensor:
    """`run` on a batch of any size: split into chunks of at most profile.max, a chunk below
    profile.min padded with zeros (and its padding dropped from the output)."""
    outputs = []
    for start in range(0, max(len(images), 1), profile.max):  # 0 crops: one empty chunk
        chunk = images[start:start + profile.max]
        count = len(chunk)
        if count < profile.min:
            chunk = torch.cat([chunk, chunk.new_zeros((profile.min - count, *chunk.shape[1:]))])
        outputs.append(run(chunk)[:count])
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


def out_of_memory_error(batch: int, profile: BatchProfile) -> UserError:
    smaller = max(profile.min, profile.max // 2)
    return UserError(f"out of GPU memory with a batch of {batch} crops (batch profile "
                     f"{profile.min},{profile.opt},{profile.max}); use a smaller max batch, e.g. "
                     f"--batch-profile {profile.min},{min(profile.opt, smaller)},{smaller}, or free GPU memory")


def run_batches(run: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                profile: BatchProfile) -> torch.Tensor:
    """run_in_chunks without autograd, a CUDA out-of-memory error turned into out_of_memory_error."""
    try:
        with torch.inference_mode():
            return run_in_chunks(run, images, profile)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        raise out_of_memory_error(min(len(images), profile.max), profile) from None

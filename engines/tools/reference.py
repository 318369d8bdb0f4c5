"""A fixed reference workload, timed in the same run as a benchmark.

Timings of one commit differ several-fold between two 2-core machines (and on one machine under
other load); a figure divided by this reference, measured moments apart on the same machine,
compares across machines far better than milliseconds do. The workload is one 3x3 convolution,
64 -> 64 channels on a 4x64x64x48 tensor (0.45 GMAC, HRNet-W32's stage-1 width at its heatmap
size), in torch eager with torch's default threads.
"""

from __future__ import annotations

import time

import numpy as np
import torch

__all__ = ["reference_ms", "REFERENCE_NAME"]

REFERENCE_NAME = "torch conv3x3 64ch 4x64x48 (0.45 GMAC)"


def reference_ms(repeats: int = 15, warmup: int = 3) -> float:
    """Median milliseconds of the reference workload."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(64, 64, 3, 3, generator=generator) * 0.05
    x = torch.randn(4, 64, 64, 48, generator=generator)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            torch.nn.functional.conv2d(x, weight, padding=1)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3

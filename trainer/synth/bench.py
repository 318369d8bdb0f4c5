"""Throughput of the synthetic video generator on one thread: frames rendered, JPEG-encoded and
written (to a temporary folder) per second."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from .sequence import VideoKnobs, frames
from .writers import write_jpeg


def bench(width: int, height: int, people: tuple[int, int], n_frames: int, repeats: int, seed: int) -> dict:
    cv2.setNumThreads(1)
    knobs = VideoKnobs(width=width, height=height, people=people, frames=n_frames)
    fps, render_fps = [], []
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        for r in range(repeats):
            render_s = 0.0
            start = time.perf_counter()
            t0 = start
            for fr in frames(np.random.default_rng([seed, r]), knobs):
                render_s += time.perf_counter() - t0
                write_jpeg(Path(tmp) / f"{r}_{fr.index:06d}.jpg", fr.image, 90)
                t0 = time.perf_counter()
            total = time.perf_counter() - start
            fps.append(n_frames / total)
            render_fps.append(n_frames / render_s)
    return {"fps": fps, "median_fps": float(np.median(fps)), "median_render_fps": float(np.median(render_fps))}

"""`python -m tracker bench --stage STAGE`: time pipeline stages and print median milliseconds.

Stages are registered in `STAGES` (name -> function(args) -> list of result rows); add a stage by
writing such a function and adding it there (and any options it needs in `_parser`).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable

import numpy as np

from engines.errors import UserError

__all__ = ["main", "STAGES", "bench_track"]


def bench_track(args: argparse.Namespace) -> list[dict]:
    """PoseTracker.update on synthetic moving people with noisy keypoints, per crowd size."""
    from tracker.tracking import PoseTracker
    from tracker.tracking.synthetic import noisy_detections, synthetic_people

    rows = []
    for people in args.people:
        rng = np.random.default_rng(0)
        gt = synthetic_people(people, args.frames, rng)
        frames = [noisy_detections(gt[f], rng) for f in range(args.frames)]
        tracker = PoseTracker()
        times = []
        for f, (boxes, kpts) in enumerate(frames):
            start = time.perf_counter()
            tracker.update(boxes, kpts, timestamp=f / 30)
            times.append(time.perf_counter() - start)
        steady = np.array(times[args.warmup:]) * 1e3
        rows.append({"stage": "track", "people": people, "frames": len(steady),
                     "median_ms": float(np.median(steady)), "p90_ms": float(np.percentile(steady, 90))})
    return rows


STAGES: dict[str, Callable[[argparse.Namespace], list[dict]]] = {"track": bench_track}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tracker bench", description="Time tracker stages.")
    parser.add_argument("--stage", required=True, help=f"one of: {', '.join(STAGES)}")
    parser.add_argument("--people", type=int, nargs="+", default=[5, 20, 50], help="crowd sizes (track stage)")
    parser.add_argument("--frames", type=int, default=300, help="frames per run")
    parser.add_argument("--warmup", type=int, default=20, help="frames left out of the statistics")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.stage not in STAGES:
        raise UserError(f"unknown bench stage {args.stage!r}; choose one of {', '.join(STAGES)}")
    if args.frames <= args.warmup:
        raise UserError(f"--frames ({args.frames}) must exceed --warmup ({args.warmup})")
    rows = STAGES[args.stage](args)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        extras = "  ".join(f"{k}={v}" for k, v in row.items() if k not in ("stage", "median_ms", "p90_ms"))
        print(f"{row['stage']:<8} {extras:<24} median {row['median_ms']:.3f} ms   p90 {row['p90_ms']:.3f} ms")
    return 0

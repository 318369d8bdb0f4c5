"""`python -m tracker bench --stage STAGE`: time pipeline stages and print median milliseconds.

Stages are registered in `STAGES` (name -> function(args) -> list of result rows); add a stage by
writing such a function and adding it there (and any options it needs in `_parser`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import time
from typing import Callable

import numpy as np

from engines.errors import UserError
from engines.tools.reference import REFERENCE_NAME, reference_ms

__all__ = ["main", "STAGES", "bench_track", "bench_e2e", "bench_live"]


def demo_detections(num_people: int, num_frames: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per frame (boxes (N,5), keypoints (N,17,3)) for the track stage: the bundled demo clip's
    ground-truth people (in track id order), copied side by side (one clip width apart) until there are `num_people`,
    the clip played forth and back for continuity, with what a pose model adds (joint noise of
    1.5% of the person's height, joint and box scores)."""
    from engines.formats.posetrack import load_sequence
    from tracker.sources import DEMO_CLIP

    frames = load_sequence(DEMO_CLIP.parent / "demo_gt" / "demo.json").frames
    cycle = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    out = []
    for f in range(num_frames):
        frame = frames[cycle[f % len(cycle)]]
        people = frame.keypoints[np.argsort(frame.track_ids)].astype(np.float64)
        copies = -(-num_people // max(1, len(people)))
        kpts = np.concatenate([people + [640.0 * k, 0, 0] for k in range(copies)])[:num_people]
        present = kpts[:, :, 2] > 0
        centre = (kpts[:, :, :2] * present[..., None]).sum(1) / np.maximum(present.sum(1), 1)[:, None]
        kpts[:, :, :2] = np.where(present[..., None], kpts[:, :, :2], centre[:, None])
        height = np.ptp(kpts[:, :, 1], axis=1)[:, None, None]
        kpts[:, :, :2] += rng.normal(0, 1, kpts[:, :, :2].shape) * 0.015 * height
        kpts[:, :, 2] = np.where(present, rng.uniform(0.5, 0.95, present.shape), 0.0)
        lo, hi = kpts[:, :, :2].min(1), kpts[:, :, :2].max(1)
        margin = 0.1 * (hi - lo)
        boxes = np.concatenate([lo - margin, hi + margin, rng.uniform(0.7, 0.95, (len(kpts), 1))], 1)
        out.append((boxes.astype(np.float32), kpts.astype(np.float32)))
    return out


def bench_track(args: argparse.Namespace) -> list[dict]:
    """PoseTracker.update per crowd size on `demo_detections` (default settings, or --tracker's);
    `tracked` is how many tracks the last frame matched (as many as people when all is well)."""
    from tracker.tracking import PoseTracker, load_tracker_config
    from tracker.tracking.lifecycle import TRACKED

    rows = []
    for people in args.people:
        frames = demo_detections(people, args.frames, np.random.default_rng(0))
        tracker = PoseTracker(load_tracker_config(args.tracker_settings))
        times = []
        for f, (boxes, kpts) in enumerate(frames):
            start = time.perf_counter()
            reported = tracker.update(boxes, kpts, timestamp=f / 30)
            times.append(time.perf_counter() - start)
        steady = np.array(times[args.warmup:]) * 1e3
        rows.append({"stage": "track", "people": people, "frames": len(steady), "tracked": int((reported.states == TRACKED).sum()),
                     "median_ms": float(np.median(steady)), "p90_ms": float(np.percentile(steady, 90))})
    return rows


def _run_pipeline(args: argparse.Namespace, live: bool, seconds: float | None = None):
    """Run the app's pipeline on args.source (every frame of a file, or the file read like a
    camera) with the app's models, serving it to --stalled-viewers viewers that never read;
    returns (stats, per-frame stage samples, decode ms)."""
    from tracker.app import load_run_models, plan_run
    from tracker.pipeline import Pipeline, Stream, new_tracker
    from tracker.render import Renderer
    from tracker.serve import LiveServer
    from tracker.sources import open_source

    plan = plan_run(args, [args.source])
    detector, estimator = load_run_models(args, plan)
    source = open_source(args.source, loop=live, live=live)
    stream = Stream(source=source, tracker=new_tracker(estimator.schema.name, source.fps, plan.tracker),
                    renderer=Renderer(estimator.schema.name))
    decode_ms = _decode_ms(args.source, args.frames)
    deadline = time.monotonic() + seconds if live else None
    samples = []  # every frame's stage ms

    with contextlib.ExitStack() as stack:
        server = stack.enter_context(LiveServer(("127.0.0.1", 0))) if args.stalled_viewers else None
        if server is not None:
            server.start([stream])
            routes = ("/stream.mjpg", "/events")
            for viewer in range(args.stalled_viewers):
                stack.enter_context(_stalled_viewer(server.port, routes[viewer % len(routes)]))

        def on_frame(s):
            samples.append(s.frame_ms)
            if server is not None:
                server.publish(s)
            if (live and time.monotonic() > deadline) or (args.frames and s.frames >= args.frames):
                pipeline.stop()

        pipeline = Pipeline(estimator, detector, [stream], det_interval=plan.det_interval, on_frame=on_frame)
        stats = pipeline.run()
    return stats, samples[args.warmup:], decode_ms


def _stalled_viewer(port: int, route: str) -> socket.socket:
    """A viewer of `route` on 127.0.0.1:`port` that never reads (a small receive buffer, full at once)."""
    viewer = socket.socket()
    viewer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    viewer.connect(("127.0.0.1", port))
    viewer.sendall(f"GET {route} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return viewer


def _decode_ms(spec: str, frames: int) -> float:
    """Median milliseconds to decode one frame of the source on its own."""
    from tracker.sources import open_source

    source, times = open_source(spec), []
    try:
        start = time.perf_counter()
        for frame in source:
            times.append(time.perf_counter() - start)
            if len(times) >= (frames or 300):
                break
            start = time.perf_counter()
    finally:
        source.close()
    return float(np.median(times) * 1e3) if times else float("nan")


def _median(samples: list[dict], key: str) -> float:
    return float(np.median([s[key] for s in samples])) if samples else float("nan")


def bench_e2e(args: argparse.Namespace) -> list[dict]:
    """End to end on a file (default the demo clip): FPS over the whole run and median stage ms."""
    stats, samples, decode_ms = _run_pipeline(args, live=False)
    row = {"stage": "e2e", "frames": stats.frames, "fps": round(stats.fps, 2), "decode_ms": round(decode_ms, 2),
           "poses_per_frame": round(stats.poses / max(stats.frames, 1), 2)}
    row.update({f"{k}_ms": round(_median(samples, k), 2) for k in ("detect", "pose", "track", "render")})
    row["median_ms"] = _median(samples, "detect") + _median(samples, "pose") + _median(samples, "track")
    row["p90_ms"] = float(np.percentile([s["detect"] + s["pose"] + s["track"] for s in samples], 90))
    return [row]


def bench_live(args: argparse.Namespace) -> list[dict]:
    """The source played like a camera at its own frame rate for --seconds (or until --frames
    frames were processed): capture-to-output latency (median, p90, and how it drifts from the
    first to the last quarter) and drops."""
    stats, samples, _ = _run_pipeline(args, live=True, seconds=args.seconds)
    latency = np.array([s["latency"] for s in samples])
    quarter = max(len(latency) // 4, 1)
    return [{"stage": "live", "frames": stats.frames, "fps": round(stats.fps, 2), "dropped": stats.dropped,
             "drift_ms": round(float(np.median(latency[-quarter:]) - np.median(latency[:quarter])), 2),
             "median_ms": float(np.median(latency)), "p90_ms": float(np.percentile(latency, 90))}]


STAGES: dict[str, Callable[[argparse.Namespace], list[dict]]] = {
    "track": bench_track, "e2e": bench_e2e, "live": bench_live}


def _parser() -> argparse.ArgumentParser:
    from tracker.app import add_model_options, add_runtime_options, add_tracker_option, positive_int

    parser = argparse.ArgumentParser(prog="python -m tracker bench", description="Time tracker stages.")
    parser.add_argument("--stage", required=True, help=f"one of: {', '.join(STAGES)}")
    parser.add_argument("--people", type=int, nargs="+", default=[5, 20, 50], help="crowd sizes (track stage)")
    parser.add_argument("--frames", type=int, default=300,
                        help="frames per run (e2e: 0 = the whole file; live: at most, within --seconds)")
    parser.add_argument("--source", default="demo", help="video for the e2e and live stages (default demo)")
    parser.add_argument("--seconds", type=float, default=20.0, help="live stage duration")
    parser.add_argument("--stalled-viewers", type=int, default=0, metavar="N",
                        help="e2e and live stages: serve the run (as --serve does) to N viewers of /stream.mjpg "
                             "and /events in turn that never read")
    add_model_options(parser)
    parser.add_argument("--det-interval", type=positive_int,
                        help="detector every N frames (default: as python -m tracker, 2 on the CPU with the "
                             "real-world models, else 1)")
    add_tracker_option(parser)
    add_runtime_options(parser)
    parser.add_argument("--warmup", type=int, default=20, help="frames left out of the statistics")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.stage not in STAGES:
        raise UserError(f"unknown bench stage {args.stage!r}; choose one of {', '.join(STAGES)}")
    if args.frames and args.frames <= args.warmup:
        raise UserError(f"--frames ({args.frames}) must exceed --warmup ({args.warmup})")
    rows = STAGES[args.stage](args)
    # the same fixed workload timed in this run: ratios to it compare across machines
    reference = reference_ms()
    for row in rows:
        row["reference_ms"], row["x_ref"] = round(reference, 3), round(row["median_ms"] / reference, 4)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    shown = ("stage", "median_ms", "p90_ms", "reference_ms", "x_ref")
    for row in rows:
        extras = "  ".join(f"{k}={v}" for k, v in row.items() if k not in shown)
        print(f"{row['stage']:<8} {extras:<24} median {row['median_ms']:.3f} ms   p90 {row['p90_ms']:.3f} ms   "
              f"x_ref {row['x_ref']:.4f}")
    print(f"x_ref: median / {reference:.2f} ms of the reference workload ({REFERENCE_NAME}), timed in this run")
    return 0

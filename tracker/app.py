"""`python -m tracker`: track people in any source; results land in a numbered run folder.

With no arguments it processes the bundled demo clip with the bundled models and writes the
annotated video and PoseTrack JSON to runs/track/expN, which it prints.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engines.errors import UserError

__all__ = ["main", "build_parser", "add_runtime_options", "load_pose", "open_sources", "open_streams", "EXPORTS",
           "DEFAULT_POSE", "DEFAULT_DET"]

DEFAULT_POSE = "lite_w16_160x128"
DEFAULT_DET = "centernet"
# engines.backends.backend_names(), spelled out so that --help does not import torch
BACKEND_CHOICES = ["torch", "onnxruntime", "compile", "tensorrt", "tensorrt-onnx"]
# format -> (file suffix, writer class in tracker.export)
EXPORTS = {
    "posetrack": (".json", "PoseTrack18Writer"),
    "posetrack17": (".pt17.json", "PoseTrack17Writer"),
    "jsonl": (".jsonl", "JsonlWriter"),
    "csv": (".csv", "CsvWriter"),
    "mot": (".mot.txt", "MotWriter"),
}


def build_parser(prog: str = "python -m tracker") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Real-time multi-person pose tracking (HRNet).")
    p.add_argument("--source", action="append", default=None,
                   help="webcam, webcam:N, N, video file, image folder or glob, rtsp/http URL, or demo "
                        "(default); repeat for several sources, each tracked on its own")
    p.add_argument("--loop", action="store_true", help="play video files in a loop, read like a camera")
    p.add_argument("--show", action="store_true", help="show a window (q or Esc quits)")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=True,
                   help="write the annotated video (default: on)")
    p.add_argument("--export", action="append", choices=sorted(EXPORTS), default=None,
                   help="track files to write (repeatable; default: posetrack)")
    p.add_argument("--jsonl", metavar="PATH", help="also stream one JSON line per frame to PATH ('-' = stdout)")
    p.add_argument("--pose", default=DEFAULT_POSE,
                   help=f"pose model: bundled preset name, registry name or checkpoint path (default {DEFAULT_POSE})")
    p.add_argument("--preset", help="preset of a --pose checkpoint file (default: the registry's, else "
                                    f"{DEFAULT_POSE})")
    p.add_argument("--det", default=DEFAULT_DET,
                   help="person detector: centernet (bundled), hog, centernet:CHECKPOINT, registry name "
                        f"(yolox-nano...) or ONNX path (default {DEFAULT_DET})")
    p.add_argument("--det-interval", type=int, default=1,
                   help="run the detector every N frames; boxes follow the tracked keypoints in between")
    add_runtime_options(p)
    p.add_argument("--out", default="runs/track", help="parent of the numbered run folders (default runs/track)")
    return p


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    """How the models run: --device, --backend, --half, --batch-profile, --decode (load_pose reads them)."""
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--backend", choices=BACKEND_CHOICES,
                   help="pose network runtime (default: onnxruntime on cpu, torch on cuda)")
    p.add_argument("--half", action="store_true", help="FP16 pose network (torch, compile, tensorrt on cuda)")
    p.add_argument("--batch-profile", metavar="MIN,OPT,MAX",
                   help="crops per pose network call on GPU backends, the TensorRT engine's range "
                        "(default 1,8,32; more people are split)")
    p.add_argument("--decode", choices=["dark", "standard"], default="dark",
                   help="heatmap decode: dark (default; sub-pixel, +3 OKS AP on synthetic people for "
                        "0.4 ms a frame) or the official standard one")


def load_pose(name: str, preset: str | None, args: argparse.Namespace, device: str | None = None):
    """A PoseEstimator for a bundled preset name, a registry name or a checkpoint path, run as
    add_runtime_options' flags in `args` say (`device` overrides --device); without a backend,
    the fastest one measured for the device (ONNX Runtime is ~2.5x torch on CPU)."""
    device = device or args.device
    if args.half and device == "cpu":
        raise UserError("--half is for --device cuda: on the CPU FP16 runs several times slower than FP32")
    backend = args.backend or ("onnxruntime" if device == "cpu" else "torch")
    options = {"backend": backend, "device": device, "half": args.half, "decode": args.decode}
    if args.batch_profile:
        from engines.batching import BatchProfile

        profile = BatchProfile.parse(args.batch_profile)
        options["batch_profile"] = (profile.min, profile.opt, profile.max)
    from engines.estimator import PoseEstimator
    from engines.presets import PRESETS
    from engines.registry import REGISTRY, resolve
    from engines.weights import bundled_weights

    if name in PRESETS:
        return PoseEstimator(name, bundled_weights(name), **options)
    path = resolve(name, "pose")
    entry = REGISTRY.get(name)
    chosen = preset or (entry.preset if entry is not None else None) or DEFAULT_POSE
    return PoseEstimator(chosen, path, **options)


def _unique_names(sources) -> list[str]:
    names, seen = [], {}
    for source in sources:
        count = seen.get(source.name, 0)
        seen[source.name] = count + 1
        names.append(source.name if count == 0 else f"{source.name}_{count}")
    return names


def open_sources(specs: list[str], loop: bool = False) -> list:
    """Open every --source (all or none: on an error the ones already open are closed)."""
    from tracker.sources import open_source

    sources = []
    try:
        for spec in specs:
            sources.append(open_source(spec, loop=loop, live=loop))
    except BaseException:
        for source in sources:
            source.close()
        raise
    return sources


def open_streams(args, sources: list, schema: str, run_dir: Path, jsonl_path: str | None) -> list:
    """Give each source its own tracker, exporters, video and renderer."""
    import tracker.export as export
    from tracker.pipeline import Stream, VideoSink, new_tracker
    from tracker.render import Renderer

    streams = []
    for source, name in zip(sources, _unique_names(sources)):
        writers = [getattr(export, EXPORTS[fmt][1])(run_dir / f"{name}{EXPORTS[fmt][0]}", schema=schema)
                   for fmt in dict.fromkeys(args.export or ["posetrack"])]
        if jsonl_path is not None:
            writers.append(export.JsonlWriter(jsonl_path, schema=schema))
        streams.append(Stream(
            source=source, tracker=new_tracker(schema, source.fps), writers=writers,
            video=VideoSink(run_dir / f"{name}.mp4", source.fps) if args.save else None,
            renderer=Renderer(schema) if args.save or args.show else None, show=args.show))
    return streams


def _check_display() -> None:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("--show needs a display (no DISPLAY or WAYLAND_DISPLAY); use --save instead")


def main(argv=None) -> int:
    from engines.detectors import load_detector
    from tracker.pipeline import Pipeline
    from tracker.progress import Progress
    from tracker.runs import next_run_dir

    args = build_parser().parse_args(argv)
    if args.show:
        _check_display()
    to_stdout = args.jsonl == "-"
    say = sys.stderr if to_stdout else sys.stdout
    if args.jsonl and not to_stdout and len(args.source or ["demo"]) > 1:
        raise UserError("--jsonl PATH takes one source; use --export jsonl for several")
    # sources first: a wrong path fails at once, before the models load
    sources = open_sources(args.source or ["demo"], loop=args.loop)
    try:
        estimator = load_pose(args.pose, args.preset, args)
        detector = load_detector(args.det, device=args.device)
    except BaseException:
        for source in sources:
            source.close()
        raise
    run_dir = next_run_dir(args.out)
    jsonl_path = "/dev/stdout" if to_stdout else args.jsonl
    streams = open_streams(args, sources, estimator.schema.name, run_dir, jsonl_path)
    total = sum(s.source.num_frames or 0 for s in streams) if not any(s.source.live for s in streams) else None
    progress = Progress(total or None, label="tracking")
    pipeline = Pipeline(estimator, detector, streams, det_interval=args.det_interval,
                        on_frame=lambda _stream: progress.update(sum(s.frames for s in streams)))
    stats = pipeline.run()
    progress.close()
    note = " (interrupted)" if stats.interrupted else ""
    print(f"{stats.frames} frames, {stats.fps:.1f} FPS mean, {stats.tracks} tracks, "
          f"{stats.skipped} unreadable frames skipped, {stats.dropped} stale frames dropped{note}", file=say)
    print(f"results saved to {run_dir}", file=say)
    return 0

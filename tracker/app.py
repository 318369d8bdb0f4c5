"""`python -m tracker`: track people in any source; results land in a numbered run folder.

With no arguments it processes the bundled demo clip with the bundled models and writes the
annotated video and PoseTrack JSON to runs/track/expN, which it prints.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engines.errors import UserError, WriteError

__all__ = ["main", "build_parser", "add_runtime_options", "add_tracker_option", "pose_from_args",
           "default_models", "open_sources", "open_streams", "EXPORTS", "DEFAULT_POSE", "DEFAULT_DET",
           "REAL_WORLD_MODELS"]

# the bundled models (trained here on synthetic people, no download): the demo clip's defaults
DEFAULT_POSE = "lite_w32_160x128"
DEFAULT_DET = "centernet"
# real footage, per device: (detector, pose), fetched and verified on first use. On the CPU the
# cheapest real-world pair (YOLOX-Nano is ~3.5x faster than YOLOX-Tiny here; README "Models")
REAL_WORLD_MODELS = {"cpu": ("yolox-nano", "litehrnet30-coco"), "cuda": ("yolox-s", "hrnet-w32-coco")}
# engines.runtimes.backends.backend_names(), spelled out so that --help does not import torch
BACKEND_CHOICES = ["torch", "onnxruntime", "compile", "tensorrt", "tensorrt-onnx"]
# format -> (file suffix, writer class in tracker.export)
EXPORTS = {
    "posetrack": (".json", "PoseTrack18Writer"),
    "posetrack17": (".pt17.json", "PoseTrack17Writer"),
    "jsonl": (".jsonl", "JsonlWriter"),
    "csv": (".csv", "CsvWriter"),
    "mot": (".mot.txt", "MotWriter"),
}


def positive_int(text: str) -> int:
    """argparse type: an integer of 1 or more."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def build_parser(prog: str = "python -m tracker") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Real-time multi-person pose tracking (HRNet).",
        epilog="other verbs: python -m tracker eval (score PoseTrack results), bench (time the stages), "
               "batch (a folder of videos); each takes --help")
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
    add_model_options(p)
    p.add_argument("--det-interval", type=positive_int, default=1,
                   help="run the detector every N frames; in between, each person's box is fitted around "
                        "the keypoints where the tracker predicts them (tentative tracks included)")
    add_tracker_option(p)
    add_runtime_options(p)
    p.add_argument("--out", default="runs/track", help="parent of the numbered run folders (default runs/track)")
    return p


def tracker_settings(path: str) -> dict:
    """argparse type: the settings of a YAML file, read and checked at once (a wrong file or
    setting is a UserError); tracker_config joins them with the detector's thresholds."""
    from tracker.tracking.config import read_tracker_settings

    return read_tracker_settings(path)


def add_tracker_option(p: argparse.ArgumentParser) -> None:
    """--tracker FILE.yaml, its settings kept in args.tracker_settings (None: no file)."""
    p.add_argument("--tracker", metavar="FILE.yaml", dest="tracker_settings", type=tracker_settings,
                   help="tracker settings, any keys of tracker/tracking/default_tracker.yaml (the defaults; "
                        "copy it and change what you need)")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--pose, --preset, --det, --bundled (default_models reads them)."""
    cpu, cuda = REAL_WORLD_MODELS["cpu"], REAL_WORLD_MODELS["cuda"]
    p.add_argument("--pose", help="pose model: catalogue name (python -m engines fetch --list) or checkpoint "
                                  f"file (default: {DEFAULT_POSE} for the demo clip, else {cpu[1]} on cpu, "
                                  f"{cuda[1]} on cuda, fetched on first use)")
    p.add_argument("--preset", help="architecture of a --pose checkpoint file (default: the preset its "
                                    "weights fit)")
    p.add_argument("--det", help="person detector: catalogue name, centernet:CHECKPOINT, yolox:FILE, yolo:FILE "
                                 f"or ONNX file (default: {DEFAULT_DET} for the demo clip, else {cpu[0]} on "
                                 f"cpu, {cuda[0]} on cuda)")
    p.add_argument("--bundled", action="store_true",
                   help=f"use the bundled offline models ({DEFAULT_DET} + {DEFAULT_POSE}, trained on synthetic "
                        "people only) for any source")


def default_models(args: argparse.Namespace, sources: list[str], device: str) -> tuple[str, str]:
    """(detector, pose) names: --det/--pose when given; else the bundled models for the demo clip
    (or with --bundled) and the real-world ones of the device for anything else."""
    if args.bundled or all(spec == "demo" for spec in sources):
        det, pose = DEFAULT_DET, DEFAULT_POSE
    else:
        det, pose = REAL_WORLD_MODELS["cpu" if device == "cpu" else "cuda"]
    return args.det or det, args.pose or pose


def tracker_config(args: argparse.Namespace, sources: list[str], device: str | None = None):
    """The tracker's settings for a run: what --tracker's file sets, else the score thresholds
    calibrated for the run's detector (its catalogue entry, `python -m engines calibrate`), else
    TrackerConfig's defaults."""
    from engines.models.catalogue import CATALOGUE
    from tracker.tracking.config import load_tracker_config

    det, _ = default_models(args, sources, device or args.device)
    model = CATALOGUE.get(det)
    calibrated = model.tracker_thresholds if model is not None and model.task == "detector" else {}
    return load_tracker_config(args.tracker_settings, base=calibrated)


def device_name(text: str) -> str:
    """argparse type: cpu, cuda or cuda:N."""
    kind, _, index = text.partition(":")
    if text in ("cpu", "cuda") or (kind == "cuda" and index.isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"must be cpu, cuda or cuda:N, got {text!r}")


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    """How the models run: --device, --backend, --half, --batch-profile, --decode (load_pose reads them)."""
    p.add_argument("--device", default="cpu", type=device_name, help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--backend", choices=BACKEND_CHOICES,
                   help="pose network runtime (default: onnxruntime on cpu, torch on cuda)")
    p.add_argument("--half", action="store_true", help="FP16 pose network (torch, compile, tensorrt on cuda)")
    p.add_argument("--batch-profile", metavar="MIN,OPT,MAX",
                   help="crops per pose network call on GPU backends, the TensorRT engine's range "
                        "(default 1,8,32; more people are split)")
    p.add_argument("--decode", choices=["dark", "standard"], default="dark",
                   help="heatmap decode: dark (default; sub-pixel, +3 OKS AP on synthetic people for "
                        "0.4 ms a frame) or the official standard one")


def pose_from_args(name: str, preset: str | None, args: argparse.Namespace, device: str | None = None):
    """engines' load_pose for a catalogue name or checkpoint path, run as add_runtime_options'
    flags in `args` say (`device` overrides --device)."""
    from engines.pose.loading import load_pose

    device = device or args.device
    if args.half and device == "cpu":
        raise UserError("--half is for --device cuda: on the CPU FP16 runs several times slower than FP32")
    options = {"backend": args.backend, "device": device, "half": args.half, "decode": args.decode}
    if args.batch_profile:
        from engines.runtimes.batching import BatchProfile

        profile = BatchProfile.parse(args.batch_profile)
        options["batch_profile"] = (profile.min, profile.opt, profile.max)
    return load_pose(name, preset, **options)


def load_models(args: argparse.Namespace, sources: list[str], device: str | None = None):
    """(detector, pose estimator) as default_models chooses; a model that cannot be fetched
    says how to run offline. The detector keeps boxes down to the tracker's low_score: its own
    floor (0.25 for centernet, 0.3 for YOLO) would hide the weak detections that only the
    tracker's second association stage is meant to judge."""
    from engines.detectors import load_detector
    from engines.hub.download import DownloadError

    device = device or args.device
    det, pose = default_models(args, sources, device)
    try:
        estimator = pose_from_args(pose, args.preset, args, device)
        detector = load_detector(det, device=device,
                                 score_thresh=tracker_config(args, sources, device).low_score)
    except DownloadError as exc:
        raise UserError(f"{exc}; or run the bundled offline models with --bundled") from None
    print(f"models: {det} (detector) + {pose} (pose) on {device}", file=sys.stderr)
    return detector, estimator


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
    from tracker.pipeline import Stream, new_tracker
    from tracker.render import Renderer

    streams, config = [], tracker_config(args, args.source or ["demo"])
    for source, name in zip(sources, _unique_names(sources)):
        writers = [getattr(export, EXPORTS[fmt][1])(run_dir / f"{name}{EXPORTS[fmt][0]}", schema=schema)
                   for fmt in dict.fromkeys(args.export or ["posetrack"])]
        if jsonl_path is not None:
            writers.append(export.JsonlWriter(jsonl_path, schema=schema))
        streams.append(Stream(
            source=source, tracker=new_tracker(schema, source.fps, config), writers=writers,
            video=annotated_output(source, run_dir, name) if args.save else None,
            renderer=Renderer(schema) if args.save or args.show else None, show=args.show))
    return streams


def annotated_output(source, run_dir: Path, name: str):
    """Where the annotated frames go: NAME.jpg for a single image, else the video NAME.mp4."""
    from tracker.export.video import ImageSink, VideoSink
    from tracker.sources import ImageFolderSource

    if isinstance(source, ImageFolderSource) and len(source.paths) == 1:
        return ImageSink(run_dir / f"{name}.jpg")
    return VideoSink(run_dir / f"{name}.mp4", source.fps)


def _check_display() -> None:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("--show needs a display (no DISPLAY or WAYLAND_DISPLAY); use --save instead")


def check_outputs(args: argparse.Namespace) -> None:
    """Every output place writable, before anything is opened or created."""
    from tracker.runs import check_output_file, check_output_folder

    if args.jsonl and args.jsonl != "-" and len(args.source or ["demo"]) > 1:
        raise UserError("--jsonl PATH takes one source; use --export jsonl for several")
    check_output_folder(args.out, "--out")
    if args.jsonl and args.jsonl != "-":
        check_output_file(args.jsonl, "--jsonl")


def main(argv=None) -> int:
    from tracker.interrupts import StopOnCtrlC
    from tracker.pipeline import Pipeline
    from tqdm import tqdm
    from tracker.runs import RunFolder

    args = build_parser().parse_args(argv)
    if args.show:
        _check_display()
    check_outputs(args)
    to_stdout = args.jsonl == "-"
    say = sys.stderr if to_stdout else sys.stdout
    # sources first: a wrong path fails at once, before the models load
    sources = open_sources(args.source or ["demo"], loop=args.loop)
    try:
        detector, estimator = load_models(args, args.source or ["demo"])
    except BaseException:
        for source in sources:
            source.close()
        raise
    # from here on outputs exist: Ctrl+C stops the run and every output is finished (exit 130)
    with StopOnCtrlC() as ctrl_c, RunFolder(args.out) as run_dir:
        jsonl_path = "/dev/stdout" if to_stdout else args.jsonl
        try:
            streams = open_streams(args, sources, estimator.schema.name, run_dir, jsonl_path)
        except BaseException:
            for source in sources:
                source.close()
            raise
        total = sum(s.source.num_frames or 0 for s in streams) if not any(s.source.live for s in streams) else None
        # frames, FPS and (for files) ETA on stderr; mininterval keeps it cheap at 100+ FPS
        progress = tqdm(total=total or None, desc="tracking", unit="frame", file=sys.stderr,
                        mininterval=0.5, dynamic_ncols=True)
        pipeline = Pipeline(estimator, detector, streams, det_interval=args.det_interval,
                            on_frame=lambda _stream: progress.update(sum(s.frames for s in streams) - progress.n))
        ctrl_c.on_press(pipeline.stop)
        try:
            stats = pipeline.run()
        except WriteError as exc:
            if exc.broken_pipe:   # the reader of our output stopped (`--jsonl - | head`): a quiet end
                return 0
            raise WriteError(f"{exc}; what was written before is kept in {run_dir}") from None
        finally:
            progress.close()
    note = " (interrupted)" if stats.interrupted else ""
    print(f"{stats.frames} frames, {stats.fps:.1f} FPS mean, {stats.tracks} tracks, "
          f"{stats.lost} frames lost (undecodable or unreadable), {stats.dropped} stale frames dropped{note}", file=say)
    print(f"results saved to {run_dir}", file=say)
    return 130 if ctrl_c.pressed else 0

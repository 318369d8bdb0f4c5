"""`python -m tracker`: track people in any source; results land in a numbered run folder.

With no arguments it processes the bundled demo clip with the bundled models and writes the
annotated video and PoseTrack JSON to runs/track/expN, which it prints. With `--jsonl -
--no-save` (and no --export) the tracks go to stdout alone and no run folder is made.

The arguments are resolved once into a `RunPlan` (sources, models, tracker settings); what a run
opens (the --serve server, sources, the Ctrl+C handler, the run folder, the progress bar) is
released through one ExitStack.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engines.errors import UserError, WriteError

if TYPE_CHECKING:
    from tracker.tracking import TrackerConfig

__all__ = ["main", "build_parser", "add_runtime_options", "add_tracker_option", "pose_from_args",
           "default_models", "RunPlan", "plan_run", "load_run_models", "load_models", "tracker_config",
           "folder_exports", "export_writers", "open_streams", "EXPORTS", "DEFAULT_POSE", "DEFAULT_DET", "REAL_WORLD_MODELS"]

# the bundled models (trained here on synthetic people, no download): the demo clip's defaults
DEFAULT_POSE = "lite_w32_160x128"
DEFAULT_DET = "centernet"
# real footage, per device: (detector, pose), fetched and verified on first use. On the CPU the
# cheapest real-world pair (README "Models")
REAL_WORLD_MODELS = {"cpu": ("yolox-nano", "litehrnet30-coco"), "cuda": ("yolox-s", "hrnet-w32-coco")}
# their detector interval: on the CPU every second frame, the knee of speed against accuracy (README,
# "Real time on the CPU": half the detector's cost and fewer poses for about 1.5 MOTA)
REAL_WORLD_DET_INTERVAL = {"cpu": 2, "cuda": 1}
# engines.runtimes.backends.backend_names(), spelled out so that --help does not import torch
BACKEND_CHOICES = ["torch", "onnxruntime", "compile", "tensorrt", "tensorrt-onnx", "openvino"]
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
    p.add_argument("--serve", metavar="[HOST:]PORT", type=serve_address,
                   help="also serve a live view: a page, /stream.mjpg, /tracks, /events (README \"Watch from a "
                        "browser\"); HOST 127.0.0.1 unless given, PORT 0 for any free one")
    p.add_argument("--serve-token", metavar="TOKEN",
                   help="with --serve: every request must carry TOKEN (?token= or Authorization: Bearer); "
                        "default: the TRACKER_SERVE_TOKEN environment variable")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=True,
                   help="write the annotated video (default: on)")
    p.add_argument("--export", action="append", choices=sorted(EXPORTS), default=None,
                   help="track files to write (repeatable; default: posetrack, none with --jsonl -)")
    p.add_argument("--jsonl", metavar="PATH",
                   help="also stream one JSON line per frame to PATH; '-': to stdout, in place of the default "
                        "export (with --no-save no run folder is made)")
    add_model_options(p)
    p.add_argument("--det-interval", type=positive_int,
                   help="run the detector every N frames; in between, each person's box is fitted around "
                        "the keypoints where the tracker predicts them (tentative tracks included); default "
                        "2 on the CPU with the real-world models, else 1")
    add_tracker_option(p)
    add_runtime_options(p)
    p.add_argument("--out", default="runs/track", help="parent of the numbered run folders (default runs/track)")
    return p


def serve_address(text: str) -> tuple[str, int]:
    """argparse type of --serve (tracker.serve's, imported only when given)."""
    from tracker.serve import serve_address as parse

    return parse(text)


def serve_token(args: argparse.Namespace) -> str | None:
    """--serve-token, else $TRACKER_SERVE_TOKEN (only with --serve); None: no token."""
    from tracker.serve import TOKEN_VARIABLE

    if args.serve is None:
        if args.serve_token is not None:
            raise UserError("--serve-token goes with --serve")
        return None
    token = args.serve_token if args.serve_token is not None else os.environ.get(TOKEN_VARIABLE)
    if token is not None and not token.strip():
        raise UserError(f"the --serve token is empty (--serve-token or {TOKEN_VARIABLE})")
    return token


def tracker_settings(path: str) -> dict:
    """argparse type: the settings of a YAML file, read and checked at once (a wrong file or
    setting is a UserError); plan_run joins them with the detector's thresholds."""
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


def real_world(args: argparse.Namespace, sources: list[str]) -> bool:
    """Whether a run takes the real-world defaults: any source but the demo clip, without --bundled."""
    return not (args.bundled or all(spec == "demo" for spec in sources))


def default_models(args: argparse.Namespace, sources: list[str], device: str) -> tuple[str, str]:
    """(detector, pose) names: --det/--pose when given; else the bundled models for the demo clip
    (or with --bundled) and the real-world ones of the device for anything else."""
    if real_world(args, sources):
        det, pose = REAL_WORLD_MODELS["cpu" if device == "cpu" else "cuda"]
    else:
        det, pose = DEFAULT_DET, DEFAULT_POSE
    return args.det or det, args.pose or pose


@dataclass(frozen=True)
class RunPlan:
    """What a run's arguments decide, resolved once."""

    sources: list[str]          # source specs; the demo clip without --source
    device: str
    detector: str               # as load_detector takes it
    pose: str                   # as load_pose takes it
    tracker: TrackerConfig
    det_interval: int           # the detector runs every this many frames


def plan_run(args: argparse.Namespace, sources: list[str] | None = None, device: str | None = None) -> RunPlan:
    """The plan of a run over `sources` (default: --source, else the demo clip) on `device`
    (default: --device). Models: as default_models says. Tracker settings: what --tracker's file
    sets, else the score thresholds calibrated for the detector (its catalogue entry, `python -m
    engines calibrate`), else TrackerConfig's defaults. Detector interval: --det-interval, else
    the real-world one of the device (REAL_WORLD_DET_INTERVAL), else 1."""
    from engines.models.catalogue import CATALOGUE
    from tracker.tracking.config import load_tracker_config

    sources = sources if sources is not None else args.source or ["demo"]
    device = device or args.device
    det, pose = default_models(args, sources, device)
    model = CATALOGUE.get(det)
    calibrated = model.tracker_thresholds if model is not None and model.task == "detector" else {}
    det_interval = args.det_interval or (REAL_WORLD_DET_INTERVAL["cpu" if device == "cpu" else "cuda"]
                                         if real_world(args, sources) else 1)
    return RunPlan(sources=sources, device=device, detector=det, pose=pose,
                   tracker=load_tracker_config(args.tracker_settings, base=calibrated), det_interval=det_interval)


def tracker_config(args: argparse.Namespace, sources: list[str], device: str | None = None) -> TrackerConfig:
    """The tracker's settings of a run over `sources` (plan_run's)."""
    return plan_run(args, sources, device).tracker


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


def load_run_models(args: argparse.Namespace, plan: RunPlan):
    """(detector, pose estimator) of the plan, run as add_runtime_options' flags in `args` say; a
    model that cannot be fetched says how to run offline. The detector keeps boxes down to the
    tracker's low_score: its own floor (0.25 for centernet, 0.3 for YOLO) would hide the weak
    detections that only the tracker's second association stage is meant to judge."""
    from engines.detectors import load_detector
    from engines.hub.download import DownloadError

    try:
        estimator = pose_from_args(plan.pose, args.preset, args, plan.device)
        detector = load_detector(plan.detector, device=plan.device, score_thresh=plan.tracker.low_score)
    except DownloadError as exc:
        raise UserError(f"{exc}; or run the bundled offline models with --bundled") from None
    print(f"models: {plan.detector} (detector) + {plan.pose} (pose) on {plan.device}", file=sys.stderr)
    return detector, estimator


def load_models(args: argparse.Namespace, sources: list[str], device: str | None = None):
    """(detector, pose estimator) of a run over `sources` (plan_run's, load_run_models)."""
    return load_run_models(args, plan_run(args, sources, device))


def _unique_names(sources) -> list[str]:
    names, seen = [], {}
    for source in sources:
        count = seen.get(source.name, 0)
        seen[source.name] = count + 1
        names.append(source.name if count == 0 else f"{source.name}_{count}")
    return names


def folder_exports(args: argparse.Namespace) -> list[str]:
    """The track files (keys of EXPORTS) written into the run folder: --export's, else PoseTrack,
    unless `--jsonl -` streams the tracks to stdout instead."""
    return list(dict.fromkeys(args.export or ([] if args.jsonl == "-" else ["posetrack"])))


def export_writers(base: str, formats: list[str], schema: str) -> list:
    """The track writers of `formats` (keys of EXPORTS), each at `base` + its suffix."""
    import tracker.export as export

    return [getattr(export, EXPORTS[fmt][1])(f"{base}{EXPORTS[fmt][0]}", schema=schema) for fmt in formats]


def open_streams(args: argparse.Namespace, plan: RunPlan, sources: list, exports: list[str], schema: str,
                 run_dir: Path | None) -> list:
    """Give each source its own tracker, exporters, video and renderer."""
    import tracker.export as export
    from tracker.pipeline import Stream, new_tracker
    from tracker.render import Renderer

    jsonl_path = "/dev/stdout" if args.jsonl == "-" else args.jsonl
    streams = []
    for source, name in zip(sources, _unique_names(sources)):
        writers = export_writers(str(run_dir / name), exports, schema) if exports else []
        if jsonl_path is not None:
            writers.append(export.JsonlWriter(jsonl_path, schema=schema))
        streams.append(Stream(
            source=source, tracker=new_tracker(schema, source.fps, plan.tracker), writers=writers,
            video=annotated_output(source, run_dir, name) if args.save else None,
            renderer=Renderer(schema) if args.save or args.show or args.serve else None, show=args.show))
    return streams


def _release_unread(sources: list, streams: list) -> None:
    """Close the sources that no stream's capture thread has read. One that has releases its
    source itself, once its reader has left it (releasing a capture under a read crashes the
    decoder)."""
    read = [stream.source for stream in streams if stream.capture is not None]
    for source in sources:
        if not any(source is taken for taken in read):
            source.close()


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


def check_outputs(args: argparse.Namespace, plan: RunPlan, run_folder: bool) -> None:
    """Every output place writable (the --out folder where a `run_folder` is made), before
    anything is opened or created."""
    from tracker.runs import check_output_file, check_output_folder

    if args.jsonl and args.jsonl != "-" and len(plan.sources) > 1:
        raise UserError("--jsonl PATH takes one source; use --export jsonl for several")
    if run_folder:
        check_output_folder(args.out, "--out")
    if args.jsonl and args.jsonl != "-":
        check_output_file(args.jsonl, "--jsonl")


def main(argv=None) -> int:
    from tqdm import tqdm

    from tracker.interrupts import StopOnCtrlC
    from tracker.pipeline import Pipeline
    from tracker.runs import RunFolder
    from tracker.serve import LiveServer
    from tracker.sources import open_source

    args = build_parser().parse_args(argv)
    if args.show:
        _check_display()
    plan = plan_run(args)
    exports = folder_exports(args)
    run_folder = bool(exports) or args.save   # nothing to put in one (`--jsonl - --no-save`): none
    check_outputs(args, plan, run_folder)
    say = sys.stderr if args.jsonl == "-" else sys.stdout
    token = serve_token(args)
    with contextlib.ExitStack() as stack:
        # bound first: a port in use fails at once, before sources open and models load
        server = stack.enter_context(LiveServer(args.serve, token)) if args.serve else None
        sources, streams = [], []
        stack.callback(_release_unread, sources, streams)
        for spec in plan.sources:   # first: a wrong path fails at once, before the models load
            sources.append(open_source(spec, loop=args.loop, live=args.loop))
        detector, estimator = load_run_models(args, plan)
        # from here on outputs exist: Ctrl+C stops the run and every output is finished (exit 130)
        ctrl_c = stack.enter_context(StopOnCtrlC())
        run_dir = stack.enter_context(RunFolder(args.out)) if run_folder else None
        streams += open_streams(args, plan, sources, exports, estimator.schema.name, run_dir)
        if server is not None:
            server.start(streams)
        total = sum(s.source.num_frames or 0 for s in streams) if not any(s.source.live for s in streams) else None
        # frames, FPS and (for files) ETA on stderr; mininterval keeps it cheap at 100+ FPS
        progress = stack.enter_context(tqdm(total=total or None, desc="tracking", unit="frame", file=sys.stderr,
                                            mininterval=0.5, dynamic_ncols=True))

        def on_frame(stream) -> None:
            progress.update(sum(s.frames for s in streams) - progress.n)
            if server is not None:
                server.publish(stream)

        pipeline = Pipeline(estimator, detector, streams, det_interval=plan.det_interval, on_frame=on_frame)
        ctrl_c.on_press(pipeline.stop)
        try:
            stats = pipeline.run()
        except WriteError as exc:
            if exc.broken_pipe:   # the reader of our output stopped (`--jsonl - | head`): a quiet end
                return 0
            if run_dir is None:
                raise
            raise WriteError(f"{exc}; what was written before is kept in {run_dir}") from None
    note = " (interrupted)" if stats.interrupted else ""
    print(f"{stats.frames} frames, {stats.fps:.1f} FPS mean, {stats.tracks} tracks, "
          f"{stats.lost} frames lost (undecodable or unreadable), {stats.dropped} stale frames dropped{note}", file=say)
    if run_dir is not None:
        print(f"results saved to {run_dir}", file=say)
    return 130 if ctrl_c.pressed else 0

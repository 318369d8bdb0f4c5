"""`python -m tracker batch INPUT... --out DIR`: track every video of folders, globs or lists,
one tracker per video, resumably, with a manifest of what was done.

One code path processes a video, `process_video`: it tracks it (`track_video`) into the outputs
that mirror its name in --out, then appends its line to the manifest (`tracker.manifest`):
"done" once its last output is finalised, "failed" with the reason when it could not be
processed. A rerun skips the videos the manifest says are done (with this run's outputs present)
and does the rest; --force redoes them all. Two ways deal the videos out:
- here, in order, with the models loaded once; launched with torchrun (RANK / WORLD_SIZE set),
  each process takes every WORLD_SIZE-th video from its RANK on (a static split);
- `--ray`: one Ray task per video, taken by the next worker that frees up (`tracker.ray_dealer`).
A failed write (a full disk) stops the batch: every later video would fail too. Exit 0 when every
video is done, 1 when some failed, 130 after Ctrl+C.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engines.errors import UserError, WriteError
from tracker.batch_inputs import Video, find_videos
from tracker.manifest import Manifest
from tracker.runs import check_output_folder

if TYPE_CHECKING:
    from tracker.tracking import TrackerConfig

__all__ = ["main", "my_share", "BatchSettings", "batch_settings", "VideoResult", "track_video", "process_video",
           "to_do"]


def my_share(items: list, env=os.environ) -> list:
    """The items of this process: rank, rank + world, ... (all of them outside torchrun)."""
    rank, world = int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1))
    if not 0 <= rank < world:
        raise UserError(f"bad RANK={rank} for WORLD_SIZE={world}")
    return items[rank::world]


@dataclass
class BatchSettings:
    """What every video of a batch shares: where and what to write, and how to track."""

    out: Path
    formats: list[str]          # keys of tracker.app.EXPORTS
    save: bool                  # also the annotated video
    tracker_config: TrackerConfig
    det_interval: int = 1

    def outputs(self, video: Video) -> list[str]:
        """The files a video gets, relative to `out`."""
        from tracker.app import EXPORTS

        return [video.stem + EXPORTS[f][0] for f in self.formats] + ([video.stem + ".mp4"] if self.save else [])


@dataclass
class VideoResult:
    """What became of one video: its counts, or why it could not be processed (`error`). A video
    stopped by Ctrl+C (`interrupted`) is neither done nor failed."""

    video: str                  # its name (Video.name)
    input: str                  # its path
    outputs: list[str] = field(default_factory=list)
    frames: int = 0
    lost: int = 0               # frames it has that could not be decoded
    fps: float = 0.0            # frames tracked per second of work
    tracks: int = 0
    duration_s: float = 0.0     # of the video: its frames at its frame rate
    wall_s: float = 0.0         # the work on it, opening to the last output finalised
    worker: str = ""            # host:pid of the process that tracked it
    interrupted: bool = False
    error: str | None = None

    @property
    def status(self) -> str | None:
        return "failed" if self.error is not None else None if self.interrupted else "done"

    def record(self) -> dict:
        """Its manifest line."""
        record = {"video": self.video, "status": self.status, **asdict(self)}
        del record["interrupted"], record["error"]
        if self.error is not None:
            record["reason"] = self.error
        return record

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.video}: failed, {self.error}"
        return (f"{self.video}: {self.frames} frames, {self.fps:.1f} FPS, {self.tracks} tracks"
                + (f", {self.lost} frames lost (undecodable)" if self.lost else "")
                + (" (interrupted)" if self.interrupted else ""))


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def track_video(video: Video, detector, estimator, settings: BatchSettings, ctrl_c=None) -> VideoResult:
    """Track one video into its outputs in settings.out; a video that cannot be opened is a result
    with an error and leaves no file. A failed write raises WriteError. ctrl_c: a StopOnCtrlC
    whose press stops this video (its files are finished)."""
    from tracker.app import export_writers
    from tracker.pipeline import Pipeline, Stream, VideoSink, new_tracker
    from tracker.render import Renderer
    from tracker.sources import VideoSource

    result = VideoResult(video.name, str(video.path), outputs=settings.outputs(video), worker=this_worker())
    try:
        source = VideoSource(video.path)
    except UserError as exc:
        result.error = str(exc)
        return result
    schema = estimator.schema.name
    base = settings.out / video.stem
    try:
        writers = export_writers(str(base), settings.formats, schema)
    except BaseException:
        source.close()
        raise
    stream = Stream(source=source, tracker=new_tracker(schema, source.fps, settings.tracker_config), writers=writers,
                    video=VideoSink(f"{base}.mp4", source.fps) if settings.save else None,
                    renderer=Renderer(schema) if settings.save else None)
    pipeline = Pipeline(estimator, detector, [stream], det_interval=settings.det_interval)
    if ctrl_c is not None:
        ctrl_c.on_press(pipeline.stop)
    stats = pipeline.run()
    result.frames, result.lost, result.tracks, result.fps = stats.frames, stats.lost, stats.tracks, round(stats.fps, 2)
    result.duration_s = round((stats.frames + stats.lost) / source.fps, 3)
    result.interrupted = stats.interrupted
    return result


def process_video(video: Video, detector, estimator, settings: BatchSettings, ctrl_c=None) -> VideoResult:
    """Track a video and append its manifest line: the one path of every video, whoever deals
    them out. A video that fails for any reason but a failed write (which stops the batch) is a
    `failed` line with the one-line reason; an interrupted one gets no line (the next run redoes it)."""
    start = time.monotonic()
    try:
        result = track_video(video, detector, estimator, settings, ctrl_c)
    except WriteError:
        raise
    except Exception as exc:  # this video's problem (a UserError, or an error of the decoder or a model)
        reason = str(exc).splitlines()[0] if str(exc) else ""
        result = VideoResult(video.name, str(video.path), outputs=settings.outputs(video), worker=this_worker(),
                             error=reason if isinstance(exc, UserError) else f"{type(exc).__name__}: {reason}")
    result.wall_s = round(time.monotonic() - start, 3)
    if result.status is not None:
        Manifest(settings.out).append(result.record())
    return result


def to_do(videos: list[Video], settings: BatchSettings, force: bool) -> list[Video]:
    """The videos not done yet: those whose last manifest line is not "done", or whose outputs
    there are not this run's or are gone (all of them with `force`)."""
    if force:
        return list(videos)
    latest = Manifest(settings.out).latest()

    def done(video: Video) -> bool:
        record = latest.get(video.name, {})
        outputs = settings.outputs(video)
        return (record.get("status") == "done" and set(outputs) <= set(record.get("outputs", []))
                and all((settings.out / name).is_file() for name in outputs))

    return [video for video in videos if not done(video)]


def _track_here(videos: list[Video], args: argparse.Namespace, settings: BatchSettings,
                on_result) -> tuple[list[VideoResult], bool]:
    """Track `videos` one after another in this process: (results, Ctrl+C pressed)."""
    from tracker.app import load_models
    from tracker.interrupts import StopOnCtrlC

    device = args.device
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"  # one GPU per torchrun process
    detector, estimator = load_models(args, [str(video.path) for video in videos], device)
    results = []
    with StopOnCtrlC() as ctrl_c:  # Ctrl+C: the current video's files are finished, then exit 130
        for video in videos:
            results.append(process_video(video, detector, estimator, settings, ctrl_c))
            on_result(results[-1])
            if ctrl_c.pressed:
                break
    return results, ctrl_c.pressed


def _summary(results: list[VideoResult], total: int, skipped: int, interrupted: bool, manifest: Manifest) -> int:
    """Say what the batch did (stderr; the failed videos last) and give its exit code."""
    done = sum(r.status == "done" for r in results)
    failed = [r for r in results if r.status == "failed"]
    left = total - skipped - done - len(failed)
    print(f"{total} videos: {done} done now, {skipped} done before, {len(failed)} failed"
          + (f", {left} left for the next run (interrupted)" if left else "") + f"; manifest {manifest.path}",
          file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {total} videos failed:", file=sys.stderr)
        for result in failed:
            print(f"  {result.video}: {result.error}", file=sys.stderr)
    return 130 if interrupted else 1 if failed else 0


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from tracker.app import EXPORTS, add_model_options, add_runtime_options, add_tracker_option, positive_int

    p = argparse.ArgumentParser(prog="python -m tracker batch",
                                description="Track every video of folders, globs or lists, resumably.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="a folder (searched recursively), a quoted glob ('videos/**/*.mp4'), a video, or a text "
                        "file listing videos one a line; outputs mirror the videos' paths relative to it")
    p.add_argument("--out", type=Path, required=True, help="folder for the per-video outputs and manifest.jsonl")
    p.add_argument("--force", action="store_true", help="redo the videos the manifest says are done")
    p.add_argument("--export", action="append", choices=sorted(EXPORTS), default=None,
                   help="track files per video (repeatable; default: posetrack)")
    p.add_argument("--save", action="store_true", help="also write annotated videos")
    add_model_options(p)
    p.add_argument("--det-interval", type=positive_int,
                   help="detector every N frames (default: as python -m tracker, 2 on the CPU with the "
                        "real-world models, else 1)")
    add_tracker_option(p)
    add_runtime_options(p)
    ray = p.add_argument_group("Ray (pip install -e '.[ray]')")
    ray.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                     help="deal the videos to a Ray cluster, one task per video: a new one of this machine "
                          "(no ADDRESS), or the running cluster at ADDRESS (HOST:PORT; auto: the one "
                          "`ray start` runs here)")
    ray.add_argument("--cpus-per-video", type=positive_float, metavar="N", default=1.0,
                     help="CPUs a video takes (default 1)")
    ray.add_argument("--gpus-per-video", type=nonnegative_float, metavar="N", default=None,
                     help="GPUs a video takes, 0.5 shares one between two (default: 1 with --device cuda, else 0)")
    ray.add_argument("--retries", type=nonnegative_int, metavar="N", default=2,
                     help="how often a video whose worker died is tried again before it counts as failed "
                          "(default 2)")
    return p


def batch_settings(args: argparse.Namespace, videos: list[Video]) -> BatchSettings:
    from tracker.app import plan_run

    plan = plan_run(args, [str(video.path) for video in videos], args.device)
    return BatchSettings(out=args.out, formats=list(dict.fromkeys(args.export or ["posetrack"])), save=args.save,
                         det_interval=plan.det_interval, tracker_config=plan.tracker)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_output_folder(args.out, "--out")
    videos = find_videos(args.inputs, exclude=args.out)
    settings = batch_settings(args, videos)
    manifest = Manifest(args.out)
    mine = videos if args.ray else my_share(videos)
    pending = to_do(mine, settings, args.force)
    skipped = len(mine) - len(pending)
    if skipped:
        print(f"{skipped} of {len(mine)} videos done before ({manifest.path}): skipped", file=sys.stderr)
    finished = 0

    def on_result(result: VideoResult) -> None:
        nonlocal finished
        finished += 1
        print(f"[{finished}/{len(pending)}] {result.describe()}", file=sys.stderr)

    results, interrupted = [], False
    if pending:
        try:
            if args.ray:
                from tracker.ray_dealer import track_on_ray

                results, interrupted = track_on_ray(args, pending, settings, on_result)
            else:
                results, interrupted = _track_here(pending, args, settings, on_result)
        except WriteError as exc:
            raise WriteError(f"{exc}; the batch stopped, the videos {manifest.path} lists as done are done") from None
    code = _summary(results, len(mine), skipped, interrupted, manifest)
    if not interrupted:
        print(f"results saved to {args.out}")
    return code

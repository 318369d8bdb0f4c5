"""`python -m tracker batch DIR --out DIR`: track every video in a folder, one tracker per video.

Launched with torchrun (RANK / WORLD_SIZE set), each process takes every WORLD_SIZE-th video
starting at its RANK, so videos are shared across processes, GPUs or machines.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engines.errors import UserError, WriteError
from tracker.runs import check_output_folder

__all__ = ["main", "find_videos", "my_share"]


def find_videos(folder: Path) -> list[Path]:
    from tracker.sources import VIDEO_EXTENSIONS

    if not folder.is_dir():
        raise UserError(f"not a folder: {folder}")
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    if not videos:
        raise UserError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) in {folder}")
    return videos


def my_share(items: list, env=os.environ) -> list:
    """The items of this process: rank, rank + world, ... (all of them outside torchrun)."""
    rank, world = int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1))
    if not 0 <= rank < world:
        raise UserError(f"bad RANK={rank} for WORLD_SIZE={world}")
    return items[rank::world]


def main(argv=None) -> int:
    import tracker.export as export
    from tracker.app import (EXPORTS, add_model_options, add_runtime_options, add_tracker_option, load_models,
                             positive_int, tracker_config)
    from tracker.interrupts import StopOnCtrlC
    from tracker.pipeline import Pipeline, Stream, VideoSink, new_tracker
    from tracker.render import Renderer
    from tracker.sources import VideoSource

    p = argparse.ArgumentParser(prog="python -m tracker batch", description="Track every video in a folder.")
    p.add_argument("folder", type=Path)
    p.add_argument("--out", type=Path, required=True, help="folder for the per-video outputs")
    p.add_argument("--export", action="append", choices=sorted(EXPORTS), default=None,
                   help="track files per video (repeatable; default: posetrack)")
    p.add_argument("--save", action="store_true", help="also write annotated videos")
    add_model_options(p)
    p.add_argument("--det-interval", type=positive_int, default=1)
    add_tracker_option(p)
    add_runtime_options(p)
    args = p.parse_args(argv)

    check_output_folder(args.out, "--out")
    videos = my_share(find_videos(args.folder))
    device = args.device
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"  # one GPU per torchrun process
    detector, estimator = load_models(args, [str(video) for video in videos], device)
    config = tracker_config(args, [str(video) for video in videos], device)
    schema = estimator.schema.name
    formats = list(dict.fromkeys(args.export or ["posetrack"]))
    with StopOnCtrlC() as ctrl_c:  # Ctrl+C: the current video's files are finished, then exit 130
        for number, path in enumerate(videos, 1):
            source = VideoSource(path)
            writers = [getattr(export, EXPORTS[f][1])(args.out / f"{path.stem}{EXPORTS[f][0]}", schema=schema)
                       for f in formats]
            stream = Stream(source=source, tracker=new_tracker(schema, source.fps, config), writers=writers,
                            video=VideoSink(args.out / f"{path.stem}.mp4", source.fps) if args.save else None,
                            renderer=Renderer(schema) if args.save else None)
            pipeline = Pipeline(estimator, detector, [stream], det_interval=args.det_interval)
            ctrl_c.on_press(pipeline.stop)
            try:
                stats = pipeline.run()
            except WriteError as exc:
                raise WriteError(f"{exc}; the videos before {path.name} are done") from None
            print(f"[{number}/{len(videos)}] {path.name}: {stats.frames} frames, {stats.fps:.1f} FPS, "
                  f"{stats.tracks} tracks", file=sys.stderr)
            if ctrl_c.pressed:
                print(f"interrupted: {path.name} stopped after {stats.frames} frames; its files are "
                      f"finished", file=sys.stderr)
                return 130
    print(f"results saved to {args.out}")
    return 0

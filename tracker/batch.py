"""`python -m tracker batch DIR --out DIR`: track every video in a folder, one tracker per video.

Launched with torchrun (RANK / WORLD_SIZE set), each process takes every WORLD_SIZE-th video
starting at its RANK, so videos are shared across processes, GPUs or machines.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engines.errors import UserError

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
    from engines.detectors import load_detector
    from tracker.app import DEFAULT_DET, DEFAULT_POSE, EXPORTS, add_runtime_options, load_pose
    from tracker.pipeline import Pipeline, Stream, VideoSink, new_tracker
    from tracker.render import Renderer
    from tracker.sources import VideoSource

    p = argparse.ArgumentParser(prog="python -m tracker batch", description="Track every video in a folder.")
    p.add_argument("folder", type=Path)
    p.add_argument("--out", type=Path, required=True, help="folder for the per-video outputs")
    p.add_argument("--export", action="append", choices=sorted(EXPORTS), default=None,
                   help="track files per video (repeatable; default: posetrack)")
    p.add_argument("--save", action="store_true", help="also write annotated videos")
    p.add_argument("--pose", default=DEFAULT_POSE)
    p.add_argument("--preset")
    p.add_argument("--det", default=DEFAULT_DET)
    p.add_argument("--det-interval", type=int, default=1)
    add_runtime_options(p)
    args = p.parse_args(argv)

    videos = my_share(find_videos(args.folder))
    device = args.device
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"  # one GPU per torchrun process
    estimator = load_pose(args.pose, args.preset, args, device)
    detector = load_detector(args.det, device=device)
    schema = estimator.schema.name
    formats = list(dict.fromkeys(args.export or ["posetrack"]))
    for number, path in enumerate(videos, 1):
        source = VideoSource(path)
        writers = [getattr(export, EXPORTS[f][1])(args.out / f"{path.stem}{EXPORTS[f][0]}", schema=schema)
                   for f in formats]
        stream = Stream(source=source, tracker=new_tracker(schema, source.fps), writers=writers,
                        video=VideoSink(args.out / f"{path.stem}.mp4", source.fps) if args.save else None,
                        renderer=Renderer(schema) if args.save else None)
        stats = Pipeline(estimator, detector, [stream], det_interval=args.det_interval).run()
        print(f"[{number}/{len(videos)}] {path.name}: {stats.frames} frames, {stats.fps:.1f} FPS, "
              f"{stats.tracks} tracks", file=sys.stderr)
        if stats.interrupted:
            return 130
    print(f"results saved to {args.out}")
    return 0

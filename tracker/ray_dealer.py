"""`tracker batch --ray`: the videos dealt out to a Ray cluster, one task per video, each taken by
the next worker that frees up (the largest files first), so long videos do not pile up on one
worker as they can in a static split.

A worker is a Ray worker process: it loads the models on its first video and keeps them for the
next ones. Every video goes through `tracker.batch.process_video`, which writes its outputs and
its manifest line, as in a batch without Ray; so --out must be a folder every machine of the
cluster sees at the same path, as must the videos. A worker that dies (killed, out of memory, its
machine lost) has its video tried again, `--retries` times, then the video is `failed` in the
manifest. A failed write or a bad model option in a worker stops the batch, as it would here.
Ctrl+C cancels the videos not started and interrupts those in progress (their files are
finished, but they are not done: the next run redoes them); a second Ctrl+C aborts at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import socket
import sys

from engines.errors import UserError
from tracker.batch import BatchSettings, VideoResult, process_video
from tracker.batch_inputs import Video
from tracker.manifest import Manifest

__all__ = ["track_on_ray"]

# this worker process's (detector, pose estimator): Ray gives each batch (each driver, a "job") worker
# processes of its own, so they are loaded on a worker's first video and serve its next ones
_models: tuple | None = None
CONNECT_TIMEOUT_S = 5.0   # to see that something listens at a cluster's address


def _track_on_worker(video: Video, settings: BatchSettings, args: argparse.Namespace) -> VideoResult:
    """One video, in a Ray worker."""
    global _models
    from tracker.app import load_models

    if _models is None:
        _models = load_models(args, [str(video.path)], args.device)
    return process_video(video, *_models, settings)


def _connect(ray, address: str) -> None:
    """Start a cluster of this machine (address "local": a new one, even where `ray start` runs
    one) or join the one at `address` (auto: the one `ray start` runs here)."""
    if address not in ("local", "auto"):
        _check_answers(address)
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
        where = "start a local Ray cluster" if address == "local" else f"join the Ray cluster at {address}"
        raise UserError(f"cannot {where}: {str(exc).strip().splitlines()[-1]}") from None


def _check_answers(address: str) -> None:
    """Ray waits minutes for a cluster address where nothing listens: look first, for seconds."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        reason = "not HOST:PORT" if isinstance(exc, ValueError) else "nothing answers there"
        raise UserError(f"cannot join the Ray cluster at {address}: {reason} "
                        "(`ray start --head` prints the address to give)") from None


def _check_resources(ray, cpus: float, gpus: float, local: bool) -> None:
    """A video asking for more than any machine of the cluster has would wait for ever: on a local
    cluster that is an error; a running one may yet gain such a machine, so it is said."""
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    if any(node.get("CPU", 0) >= cpus and node.get("GPU", 0) >= gpus for node in nodes):
        return
    largest = ", ".join(f"{node.get('CPU', 0):g} CPUs and {node.get('GPU', 0):g} GPUs" for node in nodes)
    message = f"a video takes {cpus:g} CPUs and {gpus:g} GPUs, and no machine of the cluster has that ({largest})"
    if local:
        raise UserError(f"{message}: lower --cpus-per-video / --gpus-per-video")
    print(f"warning: {message}: the videos wait until such a machine joins", file=sys.stderr)


def _largest_first(videos: list[Video]) -> list[Video]:
    def size(video: Video) -> int:
        try:
            return video.path.stat().st_size
        except OSError:
            return 0

    return sorted(videos, key=lambda video: -size(video))


def track_on_ray(args: argparse.Namespace, videos: list[Video], settings: BatchSettings,
                 on_result) -> tuple[list[VideoResult], bool]:
    """Track `videos` on the Ray cluster `args.ray` ("local" or an address), calling on_result
    with each result as it comes: (results, Ctrl+C pressed)."""
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install -e '.[ray]' (or pip install ray)") from None
    from tracker.interrupts import StopOnCtrlC

    gpus = args.gpus_per_video if args.gpus_per_video is not None else 1.0 if args.device.startswith("cuda") else 0.0
    if args.device.startswith("cuda:"):
        raise UserError("with --ray, use --device cuda: Ray gives each video its GPU (--gpus-per-video)")
    if args.device == "cuda" and gpus == 0:
        raise UserError("--device cuda with --ray needs --gpus-per-video above 0 (1, or 0.5 to share a GPU)")
    settings = dataclasses.replace(settings, out=settings.out.absolute())   # a worker's folder is not ours
    if not sys.stderr.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")   # the workers' lines without colour codes in a log
    _connect(ray, args.ray)
    try:
        _check_resources(ray, args.cpus_per_video, gpus, local=args.ray == "local")
        # max_calls=0: a worker keeps its models for its next video, GPU tasks too (Ray's default
        # for those is a fresh process per task)
        task = ray.remote(num_cpus=args.cpus_per_video, num_gpus=gpus, max_retries=args.retries,
                          max_calls=0)(_track_on_worker)
        shared = ray.put(settings), ray.put(args)
        with StopOnCtrlC() as ctrl_c:
            running = {task.remote(video, *shared): video for video in _largest_first(videos)}
            results, cancelled = [], False
            while running:
                if ctrl_c.pressed and not cancelled:
                    for ref in running:
                        ray.cancel(ref)   # a video in progress gets a KeyboardInterrupt and finishes its files
                    cancelled = True
                finished, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                for ref in finished:
                    result = _outcome(ray, ref, running.pop(ref), settings, args.retries, cancelled)
                    if result is not None:
                        results.append(result)
                        on_result(result)
        return results, ctrl_c.pressed
    finally:
        ray.shutdown()


def _outcome(ray, ref, video: Video, settings: BatchSettings, retries: int, cancelled: bool) -> VideoResult | None:
    """A finished task's result; None for one cancelled by Ctrl+C. A task that raised re-raises
    its error here (a failed write, a model that cannot load: the batch stops)."""
    try:
        return ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        return None
    except ray.exceptions.RayTaskError as exc:
        if cancelled:
            return None
        raise exc.cause from None
    except ray.exceptions.RayError as exc:   # its worker died, every time it was tried
        if cancelled:
            return None
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        result = VideoResult(video.name, str(video.path), outputs=settings.outputs(video),
                             error=f"its worker died on each of its {retries + 1} tries ({why})")
        Manifest(settings.out).append(result.record())
        return result

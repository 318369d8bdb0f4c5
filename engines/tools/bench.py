"""Throughput of the pose network per backend, preset and batch size, or of person detectors.

    python -m engines bench --backend torch,onnxruntime --preset lite_w16_160x128,w32_256x192 \
        --batch 1,8,32 [--repeats 20] [--warmup 3] [--device cpu] [--threads N] [--json]
    python -m engines bench --people 1,8,32 --backend torch --device cuda [--frame 1280x720]
    python -m engines bench --detector centernet,hog [--image FILE | --frame 640x360]
    python -m engines bench --detector yolox-nano --preset litehrnet30_256x192 --people 1,5,10 \
        --det-interval 1,3 --backend onnxruntime --frame 1280x720

Pose: times the network call alone (normalised crops in, heatmaps out) on random inputs with
fixed random weights (speed does not depend on the weights; fixed ones let onnxruntime reuse its
cached export). Reports the median latency per batch, crops per second and, on CUDA, the peak
GPU memory allocated by torch. --people: the whole `PoseEstimator.estimate()` per frame instead
(crops, normalisation, network, decode; on CUDA the crops and decode run on the GPU) for that
many people on one frame. Detectors: median `detect()` time on one frame (an image file, or
random noise of --frame size), everything included from BGR frame to boxes. --detector with
--people: the cost of a tracked frame, detector and pose run in turn as the tracker runs them
(the detector on one frame in --det-interval; the tracker's own update is well under a millisecond).
Presets may be given by catalogue name (e.g. litehrnet30-coco); weights stay random.

Every run also times a fixed reference workload (engines.tools.reference) and reports each
median as a multiple of it (`x_ref`): that ratio is what compares across machines.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from engines.runtimes.backends import BackendOptions, backend_names, create_backend
from engines.errors import UserError, run_cli
from engines.models.presets import build_network, get_preset
from engines.tools.reference import REFERENCE_NAME, reference_ms

__all__ = ["count_macs", "time_backend", "run_bench", "format_table", "main"]


def count_macs(model: torch.nn.Module, image_size: tuple[int, int]) -> int:
    """Multiply-accumulates of one forward pass on one (w, h) image, over convolutions (the rest
    of HRNet - BN, ReLU, sums, upsampling - is a few percent and folds or fuses at inference)."""
    total = 0

    def hook(conv: torch.nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += output[0].numel() * conv.weight[0].numel()  # per output value: in/groups*kh*kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, 3, image_size[1], image_size[0]))
    finally:
        for handle in handles:
            handle.remove()
    return total


def time_backend(backend, images: np.ndarray, repeats: int, warmup: int) -> float:
    """Median seconds of one backend call on `images` after `warmup` untimed calls."""
    for _ in range(warmup):
        backend(images)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend(images)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run_detector_bench(names: list[str], frame: np.ndarray, repeats: int, warmup: int,
                       device: str) -> list[dict]:
    from engines.detectors import load_detector

    rows = []
    for name in names:
        detector = load_detector(name, device=device)
        seconds = time_backend(detector.detect, frame, repeats, warmup)
        rows.append({"detector": name, "frame": f"{frame.shape[1]}x{frame.shape[0]}",
                     "median_ms": round(seconds * 1e3, 2), "frames_per_s": round(1 / seconds, 1),
                     "people": len(detector.detect(frame)), "device": device})
    return rows


def run_frame_cost_bench(detectors: list[str], presets: list[str], backends: list[str], people: list[int],
                         intervals: list[int], frame: np.ndarray, repeats: int, warmup: int,
                         options: BackendOptions) -> list[dict]:
    """Detector + pose per frame, run as the tracker runs them: in turn on one thread, the
    detector on the first of every `interval` frames. The median time of such a run of frames,
    divided by the interval. (Timed apart and added, the two came out ~25% lower than this: an
    ONNX Runtime session's idle threads spin after a call and slow whatever runs next.)"""
    from engines.detectors import load_detector

    rows = []
    for det_name in detectors:
        detector = load_detector(det_name, device=options.device)
        for preset_name in presets:
            for backend_name in backends:
                estimator = bench_estimator(preset_name, backend_name, options)
                for count in people:
                    boxes = people_boxes(frame, count)
                    for interval in intervals:
                        def frames(image, interval=interval, boxes=boxes):
                            detector.detect(image)
                            for _ in range(interval):
                                estimator.estimate(image, boxes)
                        frame_ms = time_backend(frames, frame, repeats, warmup) * 1e3 / interval
                        rows.append({"detector": det_name, "preset": preset_name, "backend": backend_name,
                                     "people": count, "det_interval": interval, "median_ms": round(frame_ms, 2),
                                     "frames_per_s": round(1e3 / frame_ms, 1), "device": options.device})
    return rows


def bench_estimator(preset_name: str, backend_name: str, options: BackendOptions):
    """A PoseEstimator with fixed random weights and the bench's options."""
    from engines.pose.estimator import PoseEstimator

    torch.manual_seed(0)
    return PoseEstimator(preset_name, backend=backend_name, device=options.device, half=options.half,
                         channels_last=options.channels_last, threads=options.threads,
                         workers=options.workers, batch_profile=options.batch_profile)


def peak_memory_mib(device: str) -> float | str:
    """Peak GPU memory torch allocated since the last reset, in MiB ('' off CUDA)."""
    if not device.startswith("cuda"):
        return ""
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def run_bench(presets: list[str], backends: list[str], batches: list[int], repeats: int,
              warmup: int, options: BackendOptions) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for preset_name in presets:
        preset = get_preset(preset_name)
        gmac = count_macs(build_network(preset), preset.image_size) / 1e9
        for backend_name in backends:
            torch.manual_seed(0)  # same weights every run: onnxruntime reuses its cached export
            model = build_network(preset)
            backend = create_backend(backend_name, model, preset.image_size, options)
            for batch in batches:
                if options.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats(options.device)
                images = rng.standard_normal((batch, 3, preset.image_size[1], preset.image_size[0]),
                                             dtype=np.float32)
                seconds = time_backend(backend, images, repeats, warmup)
                rows.append({"preset": preset_name, "backend": backend_name, "batch": batch,
                             "gmac_per_crop": round(gmac, 3), "median_ms": round(seconds * 1e3, 2),
                             "ms_per_crop": round(seconds * 1e3 / batch, 2),
                             "crops_per_s": round(batch / seconds, 1), "device": options.device,
                             "peak_mib": peak_memory_mib(options.device),
                             "threads": torch.get_num_threads() if backend_name == "torch"
                             else options.threads,
                             "sessions": len(getattr(backend, "workers", [])) or 1})
    return rows


def people_boxes(frame: np.ndarray, count: int) -> np.ndarray:
    """`count` fixed pseudo-random person boxes (80-300 px tall, 0.4 wide per tall) in the frame."""
    rng = np.random.default_rng(1)
    height, width = frame.shape[:2]
    tall = rng.uniform(80, 300, count).clip(max=height - 1)
    wide = 0.4 * tall
    x1, y1 = rng.uniform(0, width - wide), rng.uniform(0, height - tall)
    return np.stack([x1, y1, x1 + wide, y1 + tall], axis=1).astype(np.float32)


def run_people_bench(presets: list[str], backends: list[str], people: list[int], frame: np.ndarray,
                     repeats: int, warmup: int, options: BackendOptions) -> list[dict]:
    rows = []
    for preset_name in presets:
        for backend_name in backends:
            estimator = bench_estimator(preset_name, backend_name, options)
            for count in people:
                if options.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats(options.device)
                boxes = people_boxes(frame, count)
                seconds = time_backend(lambda f: estimator.estimate(f, boxes), frame, repeats, warmup)
                rows.append({"preset": preset_name, "backend": backend_name, "people": count,
                             "frame": f"{frame.shape[1]}x{frame.shape[0]}", "on_device": estimator.on_device,
                             "median_ms": round(seconds * 1e3, 2), "ms_per_person": round(seconds * 1e3 / count, 2),
                             "peak_mib": peak_memory_mib(options.device), "device": options.device})
    return rows


POSE_COLUMNS = ["preset", "backend", "batch", "gmac_per_crop", "median_ms", "ms_per_crop", "crops_per_s",
                "peak_mib"]
DETECTOR_COLUMNS = ["detector", "frame", "median_ms", "frames_per_s", "people"]
PEOPLE_COLUMNS = ["preset", "backend", "people", "frame", "on_device", "median_ms", "ms_per_person", "peak_mib"]
FRAME_COLUMNS = ["detector", "preset", "backend", "people", "det_interval", "median_ms",
                 "frames_per_s"]


def format_table(rows: list[dict], columns: list[str] = POSE_COLUMNS) -> str:
    cells = [columns] + [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.rjust(w) if i > 1 else v.ljust(w) for i, (v, w) in
                               enumerate(zip(line, widths))) for line in cells)


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def positive_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engines bench", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", type=comma_list, default=["torch", "onnxruntime"],
                        help="comma-separated backends (default torch,onnxruntime)")
    parser.add_argument("--preset", type=comma_list, default=["lite_w16_160x128"],
                        help="comma-separated presets")
    parser.add_argument("--batch", type=positive_ints, default=[1, 8, 32], help="batch sizes (1,8,32)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per batch size")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads for torch and onnxruntime (default: their own)")
    parser.add_argument("--workers", type=int, default=None,
                        help="onnxruntime CPU sessions splitting each batch (default: 2 on 2+ cores)")
    parser.add_argument("--half", action="store_true", help="fp16 (torch, compile, tensorrt backends)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC layout (torch, compile)")
    parser.add_argument("--batch-profile", metavar="MIN,OPT,MAX",
                        help="TensorRT engine batch range and compile's largest graph (default 1,8,32)")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    parser.add_argument("--people", type=positive_ints,
                        help="time PoseEstimator.estimate() for this many people per frame instead (1,8,32)")
    parser.add_argument("--detector", type=comma_list,
                        help="time these person detectors instead (centernet, hog, yolox:FILE, ...)")
    parser.add_argument("--image", help="frame for --detector and --people (default: random noise of --frame size)")
    parser.add_argument("--frame", default="640x360", help="WxH of the random frame for --detector and --people")
    parser.add_argument("--det-interval", type=positive_ints, default=[1],
                        help="with --detector and --people: detector every N frames (1,3)")
    return parser


def pose_preset_name(name: str) -> str:
    """A preset name, or the preset of a catalogue pose model."""
    from engines.models.catalogue import CATALOGUE

    model = CATALOGUE.get(name)
    return model.preset if model is not None and model.task == "pose" else get_preset(name).name


def print_rows(rows: list[dict], columns: list[str], as_json: bool) -> None:
    """The rows with each median as a multiple of the reference workload timed right after."""
    reference = reference_ms()
    for row in rows:
        row["x_ref"] = round(row["median_ms"] / reference, 3)
    if as_json:
        print(json.dumps({"reference": {"workload": REFERENCE_NAME, "median_ms": round(reference, 3)},
                          "rows": rows}, indent=1))
        return
    print(format_table(rows, columns + ["x_ref"]))
    print(f"x_ref: median_ms / {reference:.2f} ms of the reference workload, {REFERENCE_NAME}, timed in this run")


def detector_frame(image: str | None, size: str) -> np.ndarray:
    if image:
        import cv2

        frame = cv2.imread(image, cv2.IMREAD_COLOR) if Path(image).is_file() else None
        if frame is None:
            raise UserError(f"cannot read image {image}")
        return frame
    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise UserError(f"--frame must be WxH, e.g. 640x360, got {size!r}") from None
    if w < 8 or h < 8:
        raise UserError(f"--frame is too small: {size}")
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def main(argv: Sequence[str] | None = None) -> int:
    from engines.runtimes.batching import BatchProfile

    args = build_parser().parse_args(argv)
    unknown = [b for b in args.backend if b not in backend_names()]
    if unknown:
        raise UserError(f"unknown backend {unknown[0]!r}; choose from: {', '.join(backend_names())}")
    args.preset = [pose_preset_name(name) for name in args.preset]  # a typo fails before minutes of work
    if args.repeats < 1 or args.warmup < 0:
        raise UserError("--repeats must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.detector and not args.people:
        rows = run_detector_bench(args.detector, detector_frame(args.image, args.frame), args.repeats,
                                  args.warmup, args.device)
        print_rows(rows, DETECTOR_COLUMNS, args.json)
        return 0
    profile = BatchProfile.parse(args.batch_profile) if args.batch_profile else None
    options = BackendOptions(device=args.device, half=args.half, channels_last=args.channels_last,
                             threads=args.threads, workers=args.workers,
                             batch_profile=profile and (profile.min, profile.opt, profile.max))
    if args.detector:
        rows = run_frame_cost_bench(args.detector, args.preset, args.backend, args.people, args.det_interval,
                                    detector_frame(args.image, args.frame), args.repeats, args.warmup, options)
        print_rows(rows, FRAME_COLUMNS, args.json)
    elif args.people:
        rows = run_people_bench(args.preset, args.backend, args.people, detector_frame(args.image, args.frame),
                                args.repeats, args.warmup, options)
        print_rows(rows, PEOPLE_COLUMNS, args.json)
    else:
        rows = run_bench(args.preset, args.backend, args.batch, args.repeats, args.warmup, options)
        print_rows(rows, POSE_COLUMNS, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="engines bench"))

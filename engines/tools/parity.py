"""Accuracy parity of pose backends with torch FP32, on a COCO-format keypoint set.

    python -m engines parity --data data/synth/val/annotations.json \
        [--backend onnxruntime,compile,torch:fp16] [--preset lite_w16_160x128] [--weights FILE] \
        [--device cpu|cuda] [--flip] [--limit N] [--json]

Every person of the set is estimated from its ground-truth box by the reference - torch FP32
with the official CPU pre- and post-processing (cv2 crops, numpy decode) - and by each backend
(`NAME` or `NAME:fp16`) as the tracker runs it (on CUDA: crops and decode on the GPU). Reported
per backend: the distance in frame pixels to the reference keypoints over the joints the
reference is confident about (score >= 0.2, the official rescoring threshold; below it a heatmap
is nearly flat and its argmax moves with any rounding), and the COCO keypoint AP of both. A
backend passes when the 99th percentile of that distance is <= 0.5 px and its AP is within 0.3
points of the reference's; any failure makes the exit status 1. "fp32" is IEEE FP32 throughout
(TF32 is off).

Keypoints are decoded with DARK by default: the standard decode is a step function of the
heatmap (argmax, then a quarter pixel towards the larger neighbour), so a difference in the
fifth digit can move a point by a quarter heatmap pixel (1-3 frame px). `--decode standard`
shows that effect; AP is the measure that matters there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from engines.runtimes.backends import backend_names
from engines.formats.coco_eval import coco_keypoint_ap
from engines.errors import UserError
from engines.pose.estimator import PoseEstimator
from engines.models.presets import get_preset
from engines.pose.schemas import get_schema
from engines.formats.coco import read_json
from engines.models.weights import bundled_weights

__all__ = ["CONFIDENT", "MAX_P99_PX", "MAX_AP_POINTS", "load_people", "estimate_all", "compare",
           "run_parity", "main"]

CONFIDENT = 0.2       # reference joint score from which a joint is compared
MAX_P99_PX = 0.5      # pass: 99% of the compared joints within this many frame pixels
MAX_AP_POINTS = 0.3   # pass: |AP - reference AP| in AP points (0..100)


def load_people(annotations: Path, images: Path | None, limit: int | None,
                num_joints: int) -> tuple[dict, list[tuple[int, Path, np.ndarray]]]:
    """The COCO dict (of the chosen images) and, per image with people, (image id, image path,
    boxes (N,4) xyxy) of its non-crowd people with at least one labelled joint."""
    coco = read_json(Path(annotations))
    try:
        people = [a for a in coco["annotations"] if not a.get("iscrowd") and a.get("num_keypoints", 0) > 0]
        files = {image["id"]: image["file_name"] for image in coco["images"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{annotations} is not a readable COCO keypoints file "
                        f"({type(exc).__name__}: {str(exc)[:100]})") from None
    if not people:
        raise UserError(f"{annotations} has no labelled people")
    if len(people[0]["keypoints"]) != 3 * num_joints:
        raise UserError(f"{annotations} labels {len(people[0]['keypoints']) // 3} joints, "
                        f"the preset {num_joints}")
    boxes: dict[int, list] = {}
    for person in people:
        x, y, w, h = person["bbox"]
        boxes.setdefault(person["image_id"], []).append([x, y, x + w, y + h])
    folder = Path(images) if images else Path(annotations).parent
    chosen = sorted(boxes)[:limit]
    kept = set(chosen)  # AP over the chosen images only: the others' people are not misses
    coco = {**coco, "images": [image for image in coco["images"] if image["id"] in kept],
            "annotations": [a for a in coco["annotations"] if a["image_id"] in kept]}
    return coco, [(i, folder / files[i], np.asarray(boxes[i], dtype=np.float32)) for i in chosen]


def estimate_all(estimator: PoseEstimator, people: list[tuple[int, Path, np.ndarray]]) -> np.ndarray:
    """Keypoints (N,J,3) of every listed person, images in order."""
    rows = []
    for _, path, boxes in people:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None  # no OpenCV warning
        if frame is None:
            raise UserError(f"cannot read image {path}")
        rows.append(estimator.estimate(frame, boxes))
    return np.concatenate(rows)


def keypoint_ap(coco: dict, people, keypoints: np.ndarray, sigmas: np.ndarray) -> float:
    """COCO keypoint AP (points, 0..100); person score = mean of its confident joint scores."""
    image_ids = np.repeat([image_id for image_id, _, boxes in people], [len(b) for _, _, b in people])
    scores = keypoints[..., 2]
    confident = scores >= CONFIDENT
    person_scores = (scores * confident).sum(1) / np.maximum(confident.sum(1), 1)
    results = [{"image_id": int(i), "category_id": 1, "keypoints": k.reshape(-1).round(3).tolist(),
                "score": float(s)} for i, k, s in zip(image_ids, keypoints, person_scores)]
    return 100 * coco_keypoint_ap(coco, results, sigmas)["AP"]


def compare(reference: np.ndarray, keypoints: np.ndarray) -> dict:
    """Distances (frame px) to the reference over its confident joints."""
    confident = reference[..., 2] >= CONFIDENT
    distance = np.linalg.norm(keypoints[..., :2] - reference[..., :2], axis=-1)[confident]
    if distance.size == 0:
        raise UserError("the reference is confident about no joint: use trained weights (--weights)")
    return {"joints": int(distance.size), "px_median": round(float(np.median(distance)), 4),
            "px_p99": round(float(np.percentile(distance, 99)), 4),
            "px_max": round(float(distance.max()), 4),
            "within_0.5px_pct": round(100 * float(np.mean(distance <= MAX_P99_PX)), 2)}


def parse_backend(spec: str) -> tuple[str, bool]:
    """'compile:fp16' -> ('compile', True); 'onnxruntime' -> ('onnxruntime', False)."""
    name, _, precision = spec.partition(":")
    if name not in backend_names():
        raise UserError(f"unknown backend {name!r}; choose from: {', '.join(backend_names())}")
    if precision not in ("", "fp32", "fp16"):
        raise UserError(f"backend precision is fp32 or fp16, got {spec!r}")
    return name, precision == "fp16"


def run_parity(annotations: Path, backends: list[str], preset: str, weights: str | None, device: str,
               flip_test: bool = False, images: Path | None = None, limit: int | None = None,
               batch_profile: tuple[int, int, int] | None = None, decode: str = "dark") -> list[dict]:
    """One row per backend (the reference first) with its distances and AP."""
    chosen = get_preset(preset)
    specs = [parse_backend(spec) for spec in backends]  # refuse a typo before any work
    weights = weights or bundled_weights(chosen.name)
    coco, people = load_people(annotations, images, limit, chosen.num_joints)
    sigmas = get_schema(chosen.schema).sigmas_array
    torch.backends.cudnn.allow_tf32 = False  # the reference is IEEE FP32, and so is every fp32 row
    torch.backends.cuda.matmul.allow_tf32 = False

    def run(backend: str, half: bool, on_device: bool | None = None) -> np.ndarray:
        estimator = PoseEstimator(chosen, weights, backend=backend, device=device, half=half,
                                  flip_test=flip_test, decode=decode, batch_profile=batch_profile,
                                  on_device=on_device)
        return estimate_all(estimator, people)

    reference = run("torch", False, on_device=False)
    reference_ap = keypoint_ap(coco, people, reference, sigmas)
    rows = [{"backend": "torch", "precision": "fp32", "people": len(reference), **compare(reference, reference),
             "AP": round(reference_ap, 2), "AP_diff": 0.0, "pass": True}]
    for name, half in specs:
        keypoints = run(name, half)
        distances = compare(reference, keypoints)
        ap = keypoint_ap(coco, people, keypoints, sigmas)
        rows.append({"backend": name, "precision": "fp16" if half else "fp32", "people": len(keypoints),
                     **distances, "AP": round(ap, 2), "AP_diff": round(ap - reference_ap, 2),
                     "pass": distances["px_p99"] <= MAX_P99_PX and abs(ap - reference_ap) <= MAX_AP_POINTS})
    return rows


COLUMNS = ["backend", "precision", "people", "joints", "px_median", "px_p99", "px_max", "within_0.5px_pct",
           "AP", "AP_diff", "pass"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engines parity", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="COCO keypoints annotation file")
    parser.add_argument("--images", help="folder the file names are relative to (default: the file's folder)")
    parser.add_argument("--backend", help="comma-separated NAME or NAME:fp16 to compare with torch FP32 "
                                          "(default: onnxruntime on cpu, torch:fp16,compile:fp16 on cuda)")
    parser.add_argument("--preset", default="lite_w16_160x128", help="pose preset (default lite_w16_160x128)")
    parser.add_argument("--weights", help="checkpoint (default: the preset's bundled weights)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--flip", action="store_true", help="flip test on (off by default, as the tracker)")
    parser.add_argument("--decode", choices=["dark", "standard"], default="dark",
                        help="heatmap decode (default dark: continuous, see above)")
    parser.add_argument("--limit", type=int, help="first N images with people only")
    parser.add_argument("--batch-profile", metavar="MIN,OPT,MAX", help="TensorRT batch profile (1,8,32)")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from engines.tools.bench import format_table
    from engines.runtimes.batching import BatchProfile

    args = build_parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be >= 1")
    default = "onnxruntime" if args.device == "cpu" else "torch:fp16,compile:fp16"
    backends = [b.strip() for b in (args.backend or default).split(",") if b.strip()]
    profile = BatchProfile.parse(args.batch_profile) if args.batch_profile else None
    rows = run_parity(Path(args.data), backends, args.preset, args.weights, args.device, args.flip,
                      Path(args.images) if args.images else None, args.limit,
                      profile and (profile.min, profile.opt, profile.max), args.decode)
    print(json.dumps(rows, indent=1) if args.json else format_table(rows, COLUMNS))
    failed = [f"{row['backend']}:{row['precision']}" for row in rows if not row["pass"]]
    if failed:
        print(f"parity FAILED for {', '.join(failed)} (limits: p99 <= {MAX_P99_PX} px, "
              f"|AP diff| <= {MAX_AP_POINTS})")
        return 1
    return 0

"""`python -m engines calibrate`: the tracker's score thresholds for one detector, from its scores
on held-out people (any COCO-format file with person boxes).

The detector runs on every image with its own score threshold lowered to `FLOOR`, so that the
whole score distribution is seen, and with box NMS at `MATCH_NMS`, one box per person: a detector
that keeps more (the bundled CenterNet runs at 0.7) leaves the extra boxes over a better one to the
tracker's contested rule, which keeps only those whose pose is someone else's; counted here they
would be false detections and raise every threshold (centernet: new_track_score 0.338 -> 0.443).
Its boxes are matched to the people greedily, best score first, at IoU >= 0.5; a box on an
ignored person (crowd, or no labelled joint), or unmatched with its centre in an ignore region
(PoseTrack marks the people nobody labelled so), counts neither way. Then one of two rules.

The precision rule (`--rule precision`, the default), with recall = true detections at or above
a score / labelled people:

- `high_score`: the lowest score from which the detections kept are at least `HIGH_PRECISION`
  correct. These take part in every association stage, so they must be mostly people.
- `new_track_score`: the same at `NEW_PRECISION`: a detection nobody claims starts a track, and a
  false one costs a false track for `min_hits` frames or more.
- `low_score`: the same at `LOW_PRECISION`. Between it and `high_score` lie the ByteTrack-style
  weak detections, offered only to tracks that already exist under a stricter gate. The tracker
  has the detector keep boxes down to this score (tracker.app.load_models).

Why precision for the two upper ones: a detector's scores have no fixed meaning (the bundled
CenterNet's true detections have a median score near 0.5, where YOLOX's defaults 0.5 / 0.6 drop
half of them), but the fraction of correct boxes above a score does. The levels were chosen by
measurement with the bundled CenterNet, calibrated on data/synth/val and tracked on synthetic
videos held out from both (8 sequences, 3-10 people, occlusion 0.7): high/new precision 0.95/0.97
gave mAP 57.5, MOTA 43.2, IDF1 53.4, HOTA 33.2 against 56.8, 40.9, 51.2, 31.7 at 0.9/0.95 and
48.3, 39.2, 47.7, 30.3 with the defaults; 0.95/0.98 was within 0.4 of 0.95/0.97.
`low_score` was first the score above which 95% of true detections lie (centernet: 0.167,
precision 0.77); it had no effect while the detector's own floor (0.25) hid the boxes under it.
Once the tracker did see them, the demo clip's IDF1 fell from 67.7 to 51.4 (at 0.2: 50.0) and the
synthetic videos lost 1-1.5 IDF1: the weak boxes' poses pull tracks onto the wrong person. At
precision 0.9 (centernet: 0.243, next to the 0.25 it was tuned with) the synthetic videos track as
before.

The precision rule needs a set where every person is labelled and a few hundred true detections:
its thresholds rest on the rare false boxes above them. The share rule (`--rule share`) needs
only the true detections: each threshold keeps the same share of them as the precision rule's
did on 984 held-out synthetic people (`SHARES`). That share holds across detectors where their
scores do not: the bundled CenterNet keeps 0.885 / 0.803 / 0.753 at its 0.243 / 0.302 / 0.338,
YOLOX-Nano (real COCO weights, same images) 0.905 / 0.830 / 0.762 at its 0.162 / 0.310 / 0.445,
although their true scores' medians are 0.47 and 0.71 (scaling by the median would give
YOLOX-Nano 0.36 / 0.45 / 0.51). It is the rule for the few real people there are to calibrate
on (README "Models").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from engines.common.boxes import box_iou
from engines.errors import UserError
from engines.formats.coco import load_person_boxes

__all__ = ["FLOOR", "MATCH_NMS", "HIGH_PRECISION", "NEW_PRECISION", "LOW_PRECISION", "SHARES", "RULES", "HEIGHT_BINS",
           "load_boxes", "match_scores", "derive_thresholds", "recall_by_height", "calibrate", "main"]

FLOOR = 0.05            # the detector's score threshold while calibrating
MATCH_NMS = 0.5         # and its box NMS
MATCH_IOU = 0.5
HIGH_PRECISION = 0.95
NEW_PRECISION = 0.97
LOW_PRECISION = 0.9
# the share rule: the mean of the two detectors above, of true detections kept at each threshold
SHARES = {"low_score": 0.895, "high_score": 0.817, "new_track_score": 0.758}
ENOUGH_FOR_PRECISION = 200   # true detections below which the precision rule is said to be unsure
RULES = ("precision", "share")


def load_boxes(annotations: Path, images_dir: Path | None = None) -> list[tuple]:
    """Per image of a COCO-format file: (image path, people's boxes (N,4) xyxy, ignored (N,) bool:
    crowd, tiny, or none of its joints labelled where the file has keypoints, ignore regions: a
    list of (K,2) polygons, as PoseTrack files mark the people nobody labelled). Image paths are
    relative to `images_dir`, else to the file's folder."""
    people = load_person_boxes(Path(annotations), images_dir)
    if not any(len(boxes) for boxes in people.boxes):
        raise UserError(f"{annotations} has no person boxes")
    return [(Path(path), np.concatenate([boxes, ignored]), np.arange(len(boxes) + len(ignored)) >= len(boxes),
             ignore_regions(image))
            for path, boxes, ignored, image in zip(people.image_paths, people.boxes, people.ignored,
                                                   people.ground_truth["images"])]


def ignore_regions(image: dict) -> list[np.ndarray]:
    """The polygons of a PoseTrack-style image entry (`ignore_regions_x`, `ignore_regions_y`)."""
    xs, ys = image.get("ignore_regions_x") or [], image.get("ignore_regions_y") or []
    return [np.stack([x, y], axis=1).astype(np.float32) for x, y in zip(xs, ys) if len(x) == len(y) >= 3]


def in_regions(boxes: np.ndarray, regions: list[np.ndarray]) -> np.ndarray:
    """(N,) bool: the box's centre lies in one of the polygons (poseval drops a predicted person
    whose points all lie in ignore regions)."""
    centres = (boxes[:, :2] + boxes[:, 2:4]) / 2
    return np.array([any(cv2.pointPolygonTest(region, (float(x), float(y)), False) >= 0 for region in regions)
                     for x, y in centres], bool).reshape(len(boxes))


def match_scores(detections: np.ndarray, people: np.ndarray, ignored: np.ndarray,
                 regions: list[np.ndarray] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores of true detections, scores of false ones, each person's matched score (0: none))
    of one image: best score first, each box takes the free person it overlaps most at IoU >=
    MATCH_IOU; boxes on ignored people, and unmatched ones in an ignore region, drop out."""
    order = np.argsort(-detections[:, 4], kind="stable")
    detections = detections[order]
    iou = box_iou(detections[:, :4], people) if len(people) else np.zeros((len(detections), 0))
    free = np.ones(len(people), bool)
    matched = np.zeros(len(people), np.float32)
    true, false = [], []
    unlabelled = in_regions(detections, list(regions)) if len(regions) else np.zeros(len(detections), bool)
    for row, score, in_region in zip(iou, detections[:, 4], unlabelled):
        candidates = np.where(free & (row >= MATCH_IOU), row, -1.0)
        best = int(np.argmax(candidates)) if len(row) else -1
        if best >= 0 and candidates[best] >= 0:
            free[best] = False
            matched[best] = score
            if not ignored[best]:
                true.append(score)
        elif not in_region:
            false.append(score)
    return np.asarray(true, np.float32), np.asarray(false, np.float32), matched


def _precision_from(true: np.ndarray, false: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    kept_true = (true[None, :] >= thresholds[:, None]).sum(1)
    kept_false = (false[None, :] >= thresholds[:, None]).sum(1)
    return kept_true / np.maximum(kept_true + kept_false, 1)


def _lowest_score_with_precision(true: np.ndarray, false: np.ndarray, precision: float) -> float:
    """The lowest detection score t such that the detections >= t, and those >= any higher
    score, are at least `precision` correct (the highest true score if no t reaches it)."""
    scores = np.unique(true)
    reached = _precision_from(true, false, scores) >= precision
    # the first score from which precision stays reached all the way up
    failing = np.flatnonzero(~reached)
    start = failing[-1] + 1 if len(failing) else 0
    return float(scores[min(start, len(scores) - 1)])


def _score_keeping(true: np.ndarray, share: float) -> float:
    """The highest true score such that the true detections at or above it are at least `share`,
    rounded down to the 3 decimals thresholds are given in (so that detection stays kept)."""
    ordered = np.sort(true)[::-1]
    return float(np.floor(ordered[int(np.ceil(share * len(ordered))) - 1] * 1000) / 1000)


def derive_thresholds(true: np.ndarray, false: np.ndarray, people: int,
                      rule: str = "precision") -> tuple[dict, list[dict]]:
    """(thresholds for TrackerConfig by `rule`, the figures behind each: score, recall, precision)."""
    if len(true) < 10:
        raise UserError(f"only {len(true)} of {people} people were detected: too few to calibrate "
                        "(more images, or a detector that suits them)")
    if rule == "share":
        low, high, new = (_score_keeping(true, SHARES[name]) for name in ("low_score", "high_score", "new_track_score"))
    else:
        high = _lowest_score_with_precision(true, false, HIGH_PRECISION)
        new = max(_lowest_score_with_precision(true, false, NEW_PRECISION), high)
        low = min(_lowest_score_with_precision(true, false, LOW_PRECISION), high)
    thresholds = {"low_score": round(low, 3), "high_score": round(high, 3), "new_track_score": round(new, 3)}
    figures = []
    for name, score in thresholds.items():
        figures.append({"setting": name, "score": score,
                        "recall": round(float((true >= score).sum()) / people, 3),
                        "precision": round(float(_precision_from(true, false, np.asarray([score]))[0]), 3),
                        "kept": round(float((true >= score).mean()), 3)})
    return thresholds, figures


HEIGHT_BINS = (80, 160)   # px: the recall at high_score is also given for people below, between, above


def recall_by_height(heights: np.ndarray, matched: np.ndarray, score: float) -> list[dict]:
    """Recall at `score` of the people in each height bin (heights and matched scores per person)."""
    edges = [0.0, *HEIGHT_BINS, np.inf]
    rows = []
    for low, high in zip(edges, edges[1:]):
        inside = (heights >= low) & (heights < high)
        name = f"< {high:.0f} px" if low == 0 else f">= {low:.0f} px" if high == np.inf else f"{low:.0f}-{high:.0f} px"
        rows.append({"height": name, "people": int(inside.sum()),
                     "recall": round(float((matched[inside] >= score).mean()), 3) if inside.any() else None})
    return rows


def calibrate(detector, images: list[tuple], rule: str = "precision") -> tuple[dict, list[dict], dict]:
    """Run `detector` on every image; (thresholds by `rule`, figures per threshold, totals with
    the recall at high_score per person height)."""
    true, false, people = [], [], 0
    heights, matched = [], []
    for path, boxes, ignored, regions in images:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None  # no OpenCV warning
        if frame is None:
            raise UserError(f"cannot read image {path}")
        t, f, m = match_scores(detector.detect(frame), boxes, ignored, regions)
        true.append(t)
        false.append(f)
        people += int((~ignored).sum())
        heights.append(boxes[~ignored, 3] - boxes[~ignored, 1])
        matched.append(m[~ignored])
    true, false = np.concatenate(true), np.concatenate(false)
    thresholds, figures = derive_thresholds(true, false, people, rule)
    totals = {"images": len(images), "people": people, "detections_true": len(true),
              "detections_false": len(false), "true_score_median": round(float(np.median(true)), 3),
              "recall_by_height": recall_by_height(np.concatenate(heights), np.concatenate(matched),
                                                   thresholds["high_score"])}
    return thresholds, figures, totals


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m engines calibrate",
        description="Derive the tracker's score thresholds (low_score, high_score, new_track_score) for a "
                    "detector from its scores on held-out people; put them in its catalogue entry.")
    p.add_argument("--det", default="centernet", help="detector: catalogue name or what --det of python -m "
                                                      "tracker takes (default centernet)")
    p.add_argument("--data", required=True, action="append", type=Path,
                   help="COCO-format annotations with person boxes; repeat to pool several files")
    p.add_argument("--images", action="append", type=Path, default=[],
                   help="the folder the k-th --data file's image paths are relative to (default: its own folder)")
    p.add_argument("--rule", choices=RULES, default="precision",
                   help="precision: from the detections' precision (a few hundred labelled people); share: "
                        "keep the shares of true detections that hold across detectors (few people)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from engines.detectors import load_detector

    args = build_parser().parse_args(argv)
    if len(args.images) > len(args.data):
        raise UserError(f"{len(args.images)} --images for {len(args.data)} --data files")
    folders = args.images + [None] * (len(args.data) - len(args.images))
    images = [image for data, folder in zip(args.data, folders) for image in load_boxes(data, folder)]
    detector = load_detector(args.det, device=args.device, score_thresh=FLOOR, nms_thresh=MATCH_NMS)
    thresholds, figures, totals = calibrate(detector, images, args.rule)
    if args.json:
        print(json.dumps({"detector": args.det, "rule": args.rule, "thresholds": thresholds, "figures": figures,
                          **totals}))
        return 0
    print(f"{args.det} on {totals['images']} images, {totals['people']} people: "
          f"{totals['detections_true']} true and {totals['detections_false']} false detections at score >= "
          f"{FLOOR}, true median score {totals['true_score_median']}")
    for row in figures:
        print(f"  {row['setting']:16s} {row['score']:.3f}   recall {row['recall']:.3f}   "
              f"precision {row['precision']:.3f}   true detections kept {row['kept']:.3f}")
    print("recall at high_score by person height: " + ", ".join(
        f"{row['height']} {row['recall'] if row['recall'] is not None else '-'} ({row['people']})"
        for row in totals["recall_by_height"]))
    if args.rule == "share":
        print("rule: keep " + ", ".join(f"{share:.3f} of the true detections from {name}" for name, share in SHARES.items()))
        return 0
    print(f"rule: precision >= {LOW_PRECISION} from low_score, {HIGH_PRECISION} from high_score, "
          f"{NEW_PRECISION} from new_track_score")
    if totals["detections_true"] < ENOUGH_FOR_PRECISION:
        print(f"only {totals['detections_true']} true detections: the precision rule wants a few hundred "
              f"on fully labelled images; --rule share holds with fewer")
    return 0

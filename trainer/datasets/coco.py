"""COCO keypoints annotations (also the synthetic-people format) as PersonRecords.

Training uses the ground-truth boxes, cleaned as the official code does (clipped to the image,
people without any labelled keypoint dropped). Validation uses either the ground-truth boxes or a
person-detection results JSON (`[{image_id, category_id, bbox xywh, score}]`), as official.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.errors import UserError
from engines.formats.coco import CocoImages, entry_error, load_coco_images, read_json
from engines.pose.schemas import KeypointSchema
from trainer.datasets.base import PersonRecords, records_from_boxes

__all__ = ["load_coco_people", "load_detections", "parse_detections"]

PERSON = 1


def load_coco_people(ann_file: Path, images_dir: Path | None, schema: KeypointSchema,
                     image_size: tuple[int, int]) -> PersonRecords:
    """Ground-truth people with at least one labelled keypoint."""
    data = read_json(ann_file)
    images = load_coco_images(data, ann_file, images_dir)
    anns = data.get("annotations")
    if not isinstance(anns, list):
        raise UserError(f"{ann_file}: not a COCO annotation file (no 'annotations' list)")
    rows, boxes, joints = [], [], []
    for k, ann in enumerate(anns):
        try:
            if int(ann.get("category_id", PERSON)) != PERSON:
                continue
            kpts = np.asarray(ann["keypoints"], dtype=np.float32)
            x, y, w, h = (float(v) for v in ann["bbox"])
            row = images.row[int(ann["image_id"])]
        except KeyError as exc:
            raise entry_error(ann_file, "annotations", k, ann, f"missing or unknown {exc}") from None
        except (TypeError, ValueError) as exc:
            raise entry_error(ann_file, "annotations", k, ann, f"bad value ({exc})") from None
        if kpts.size != 3 * schema.num_joints:
            raise entry_error(ann_file, "annotations", k, ann,
                               f"{kpts.size} keypoint values, expected {3 * schema.num_joints} ({schema.name})")
        if kpts.max(initial=0) == 0:
            continue
        width, height = images.sizes[row]
        # official box cleaning: clip to the image, inclusive pixel corners
        x1, y1 = max(0.0, x), max(0.0, y)
        x2 = min(width - 1, x1 + max(0.0, w - 1))
        y2 = min(height - 1, y1 + max(0.0, h - 1))
        if not (w * h > 0 and x2 >= x1 and y2 >= y1):
            continue
        rows.append(row)
        boxes.append((x1, y1, x2, y2))
        joints.append(kpts.reshape(-1, 3))
    j = schema.num_joints
    return records_from_boxes(images.paths, images.ids, np.array(rows, np.int64),
                              np.array(boxes, np.float32).reshape(-1, 4),
                              np.array(joints, np.float32).reshape(-1, j, 3),
                              np.ones(len(rows), np.float32), image_size)


def parse_detections(dets, det_file: Path, images: CocoImages,
                     score_thresh: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image rows (N,), boxes xyxy (N,4), scores (N,)) of the person detections above threshold."""
    if not isinstance(dets, list):
        raise UserError(f"{det_file}: expected a list of detections [{{image_id, bbox, score}}]")
    rows, boxes, scores = [], [], []
    for k, det in enumerate(dets):
        try:
            if int(det.get("category_id", PERSON)) != PERSON:
                continue
            score = float(det["score"])
            x, y, w, h = (float(v) for v in det["bbox"])
            row = images.row[int(det["image_id"])]
        except KeyError as exc:
            raise entry_error(det_file, "detections", k, det, f"missing or unknown {exc}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise entry_error(det_file, "detections", k, det, f"bad value ({exc})") from None
        if score < score_thresh:
            continue
        rows.append(row)
        boxes.append((x, y, x + w, y + h))
        scores.append(score)
    return (np.array(rows, np.int64), np.array(boxes, np.float32).reshape(-1, 4),
            np.array(scores, np.float32))


def load_detections(det_file: Path, ann_file: Path, images_dir: Path | None, schema: KeypointSchema,
                    image_size: tuple[int, int], score_thresh: float = 0.0) -> PersonRecords:
    """Person detections for validation; joints are zero (unknown)."""
    images = load_coco_images(read_json(ann_file), ann_file, images_dir)
    rows, boxes, scores = parse_detections(read_json(det_file), det_file, images, score_thresh)
    return records_from_boxes(images.paths, images.ids, rows, boxes,
                              np.zeros((len(rows), schema.num_joints, 3), np.float32), scores, image_size)

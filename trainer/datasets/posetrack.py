"""PoseTrack 2018 (per-sequence JSON, read with engines.formats.posetrack) as PersonRecords.

Only labelled frames count. Training people are the annotated ones with at least one visible
joint, cropped from their `bbox` (or from their keypoints' extent when the file has none).
Validation uses those boxes (TEST.USE_GT_BBOX) or DATASET.DET_FILE detections (COCO results
form, PoseTrack image ids); detections centred inside a frame's ignore regions are dropped, as
the PoseTrack evaluation ignores everything there. The ground truth is also returned in COCO
keypoints form so that validation reports OKS AP with pycocotools.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engines.formats.coco import CocoImages, read_json
from engines.formats.posetrack import PoseTrackFrame, load_sequence, load_sequence_dir
from engines.pose.schemas import KeypointSchema
from trainer.datasets.base import PersonRecords, records_from_boxes
from trainer.datasets.coco import PERSON, parse_detections

__all__ = ["load_posetrack_split"]


def _frames(ann: Path) -> list[tuple[str, PoseTrackFrame]]:
    sequences = load_sequence_dir(ann) if ann.is_dir() else {ann.name: load_sequence(ann)}
    return [(name, f) for name, seq in sequences.items() for f in seq.frames if f.is_labeled]


def _person_boxes(frame: PoseTrackFrame) -> np.ndarray:
    """xyxy per person: the annotated box, else the visible keypoints' extent."""
    boxes = frame.boxes.copy()
    for r in np.flatnonzero(~np.isfinite(boxes).all(axis=1)):
        vis = frame.keypoints[r, :, 2] > 0
        pts = frame.keypoints[r, vis, :2]
        boxes[r] = np.concatenate([pts.min(axis=0), pts.max(axis=0)]) if len(pts) else np.nan
    return boxes


def _in_ignore_region(frame: PoseTrackFrame, point: np.ndarray) -> bool:
    return any(cv2.pointPolygonTest(poly.astype(np.float32).reshape(-1, 1, 2),
                                    (float(point[0]), float(point[1])), False) >= 0
               for poly in frame.ignore_regions if len(poly) >= 3)


def load_posetrack_split(cfg, ann: Path, images_dir: Path | None, schema: KeypointSchema,
                         image_size: tuple[int, int], validation: bool) -> tuple[PersonRecords, dict]:
    """(records, COCO-form ground truth) for one split: `ann` is a folder of sequence files or one file."""
    frames = _frames(ann)
    base = images_dir if images_dir is not None else (ann if ann.is_dir() else ann.parent)
    paths = [str(base / f.file_name) for _, f in frames]
    ids = np.array([f.image_id for _, f in frames], np.int64)
    rows, boxes, joints, coco_anns = [], [], [], []
    for k, (_, frame) in enumerate(frames):
        frame_boxes = _person_boxes(frame)
        for r in range(frame.num_people):
            kp = frame.keypoints[r].copy()
            kp[:, 2] = (kp[:, 2] > 0).astype(np.float32)
            if not kp[:, 2].any() or not np.isfinite(frame_boxes[r]).all():
                continue
            rows.append(k)
            boxes.append(frame_boxes[r])
            joints.append(kp)
            x1, y1, x2, y2 = (float(v) for v in frame_boxes[r])
            coco_anns.append({"id": len(coco_anns) + 1, "image_id": int(frame.image_id), "category_id": PERSON,
                              "keypoints": (kp * [1, 1, 2]).reshape(-1).tolist(), "num_keypoints": int(kp[:, 2].sum()),
                              "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    gt = {"images": [{"id": int(i), "file_name": p} for i, p in zip(ids, paths)], "annotations": coco_anns,
          "categories": [{"id": PERSON, "name": "person", "keypoints": list(schema.joints)}]}
    j = schema.num_joints
    if validation and not cfg.TEST.USE_GT_BBOX and cfg.DATASET.DET_FILE:
        from trainer.datasets.base import resolve

        det_file = resolve(cfg.DATASET.ROOT, cfg.DATASET.DET_FILE)
        images = CocoImages(ids, paths, np.zeros((len(ids), 2), np.float32))
        det_rows, det_boxes, det_scores = parse_detections(read_json(det_file), det_file, images,
                                                           cfg.TEST.IMAGE_THRE)
        keep = [i for i, (row, box) in enumerate(zip(det_rows, det_boxes))
                if not _in_ignore_region(frames[row][1], (box[:2] + box[2:]) / 2)]
        records = records_from_boxes(paths, ids, det_rows[keep], det_boxes[keep],
                                     np.zeros((len(keep), j, 3), np.float32), det_scores[keep], image_size)
        return records, gt
    records = records_from_boxes(paths, ids, np.array(rows, np.int64), np.array(boxes, np.float32).reshape(-1, 4),
                                 np.array(joints, np.float32).reshape(-1, j, 3), np.ones(len(rows), np.float32),
                                 image_size)
    return records, gt

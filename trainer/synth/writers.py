"""Writers: JPEG frames, COCO keypoints JSON, PoseTrack 2018/2017 JSON (via engines.formats.posetrack),
MP4 video. All atomic."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from engines.common.files import atomic_path, write_json_atomic
from engines.errors import UserError
from engines.formats.posetrack import (PoseTrackFrame, PoseTrackSequence, make_image_id, write_posetrack17,
                               write_posetrack18)
from engines.pose.schemas import COCO17

from .figure import frame_pixels
from .stills import Truth

# Ground-truth rows (COCO-17, head_top=17, head_bottom=18) -> PoseTrack18 order; -1 = never annotated.
POSETRACK_FROM_GT = np.array([0, 18, 17, -1, -1] + list(range(5, 17)))
POSETRACK_NOSE = 0


def _r(v: float) -> float:
    return round(float(v), 2)


def write_jpeg(path: Path, frame: np.ndarray, quality: int) -> None:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise UserError(f"could not encode JPEG for {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def _category(schema) -> dict:
    return {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(schema.joints),
            "skeleton": [[a + 1, b + 1] for a, b in schema.skeleton]}


def coco_keypoints(joints: np.ndarray, flags: np.ndarray) -> list[float]:
    """Flat COCO [x, y, v] * J list; unlabelled joints are 0, 0, 0."""
    out = []
    for (x, y), v in zip(joints, flags):
        out += [_r(x), _r(y), int(v)] if v > 0 else [0, 0, 0]
    return out


class CocoWriter:
    """Collects images and person annotations; `close()` writes annotations.json atomically."""

    def __init__(self, out_dir: Path, min_area: float = 16.0):
        self.out_dir = Path(out_dir)
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.min_area = min_area

    def add(self, image_id: int, file_name: str, width: int, height: int, truth: Truth) -> None:
        self.images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for p in range(len(truth.joints)):
            if truth.areas[p] < self.min_area:
                continue  # hidden behind others or outside the frame: not annotated, as in COCO
            flags = truth.flags[p, :17]
            x, y, w, h = (_r(v) for v in truth.boxes[p])
            self.annotations.append({
                "id": len(self.annotations) + 1, "image_id": image_id, "category_id": 1,
                "keypoints": coco_keypoints(truth.joints[p, :17], flags),
                "num_keypoints": int(np.count_nonzero(flags)), "bbox": [x, y, w, h],
                "area": _r(truth.areas[p]), "iscrowd": 0,
            })

    def close(self) -> Path:
        path = self.out_dir / "annotations.json"
        write_json_atomic(path, {
            "info": {"description": "synthetic people (trainer.synth)", "version": "1"},
            "licenses": [], "images": self.images, "annotations": self.annotations,
            "categories": [_category(COCO17)],
        })
        return path


def posetrack_frame(truth: Truth, keep: np.ndarray, track_ids: np.ndarray, file_name: str, image_id: int,
                    width: int, height: int) -> PoseTrackFrame:
    """One ground-truth frame in engines.formats.posetrack form: the kept people, PoseTrack18 joint order,
    flag 1 where labelled (visible or occluded inside the frame), (0, 0, 0) elsewhere.

    The nose is labelled whenever it lies inside the frame, also on a person turned away: PoseTrack's
    annotators mark it on the back of the head (in the PoseTrack18 sample, 11 of the 11 people seen
    from behind with both shoulders labelled have a nose), where COCO, and so our stills, leave it out."""
    rows = np.flatnonzero(keep)
    src = POSETRACK_FROM_GT
    joints = truth.joints[rows][:, src.clip(0)]
    labelled = (truth.flags[rows][:, src.clip(0)] > 0) & (src >= 0)
    labelled[:, POSETRACK_NOSE] = frame_pixels(joints[:, POSETRACK_NOSE], width, height)[2]
    kp = np.zeros((len(rows), len(src), 3), np.float32)
    kp[labelled, :2] = np.round(joints[labelled], 2)
    kp[labelled, 2] = 1
    xywh = truth.boxes[rows]
    heads = truth.head_boxes[rows]
    to_xyxy = lambda b: np.round(np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1), 2).astype(np.float32)
    return PoseTrackFrame(
        file_name=file_name, image_id=image_id, is_labeled=True, track_ids=track_ids[rows].astype(np.int64),
        keypoints=kp, scores=np.full(kp.shape[:2], np.nan, np.float32), boxes=to_xyxy(xywh), head_boxes=to_xyxy(heads),
        extra={"width": width, "height": height, "has_no_densepose": True})


class PoseTrackSequenceWriter:
    """Collects one sequence's ground-truth frames; writes PoseTrack 2018 and 2017 files."""

    def __init__(self, seq_num: int, seq_name: str, split: str, nframes: int, width: int, height: int):
        self.seq = PoseTrackSequence(name=seq_name, vid_id=f"{seq_num:06d}", nframes=nframes, frames=[])
        self.seq_num, self.split, self.width, self.height = seq_num, split, width, height

    def file_name(self, frame: int) -> str:
        return f"images/{self.split}/{self.seq.name}/{frame:06d}.jpg"

    def add(self, frame: int, truth: Truth, track_ids: np.ndarray, keep: np.ndarray) -> None:
        self.seq.frames.append(posetrack_frame(truth, keep, track_ids, self.file_name(frame),
                                               make_image_id(self.seq_num, frame), self.width, self.height))

    @property
    def num_annotations(self) -> int:
        return sum(f.num_people for f in self.seq.frames)

    def write(self, path_2018: Path, path_2017: Path | None = None) -> None:
        write_posetrack18(path_2018, self.seq)
        if path_2017 is not None:
            write_posetrack17(path_2017, self.seq)


class Mp4Writer:
    """cv2 mp4v video written under a temporary name and renamed on `close()`."""

    def __init__(self, path: Path, fps: float, width: int, height: int):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The container is chosen from the extension, so the temporary name keeps ".mp4".
        self.tmp = self.path.with_name(f".{self.path.stem}.partial.mp4")
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not self.writer.isOpened():
            raise UserError(f"cannot open an mp4v video writer for {self.path}")

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(frame)

    def close(self) -> None:
        self.writer.release()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.writer.release()
        if self.tmp.exists():
            self.tmp.unlink()

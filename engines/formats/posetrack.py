"""Read and write PoseTrack annotation files: the 2018 per-sequence JSON and the 2017 `annolist` form.

One file holds one sequence. In memory a sequence is a `PoseTrackSequence` holding one
`PoseTrackFrame` per image, people as rows of numpy arrays in the PoseTrack18 joint order
(`engines.pose.schemas.POSETRACK18`: nose, head_bottom, head_top, ears, then COCO order):

- keypoints (P,17,3) float32: x, y, v exactly as in the file (v is the visibility flag in ground
  truth; predictions usually write 1 or the score there);
- scores (P,17) float32: per-joint confidence, NaN where the file has none (ground truth);
- boxes and head_boxes (P,4) float32 xyxy in frame pixels, NaN where the file has none;
- track_ids (P,) int64.

A joint is "present" unless it is stored as (0, 0, 0), the rule the official converter
(poseval's convert.py) applies when it drops unannotated points. The 2017 form numbers joints
0..14 in poseval's order (right_ankle .. left_wrist, head_bottom, nose, head_top); the ears do
not exist there and read back as (0, 0, 0).

Annotation ids are the image id followed by the person's row (`annotation_id`): `image_id * 100
+ row` as poseval's converter writes them, with more digits for the row in a file whose most
crowded frame holds 100 people or more, so that they stay unique (poseval itself pairs people
with images by `image_id`).

Malformed files raise `UserError` naming the file and the problem. Writes are atomic.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.common.files import write_json_atomic
from engines.errors import UserError
from engines.pose.schemas import POSETRACK18

__all__ = [
    "PoseTrackFrame", "PoseTrackSequence", "POSETRACK17_JOINTS", "load_sequence", "load_sequence_dir",
    "sequence_from_dict", "to_posetrack18_dict", "to_posetrack17_dict", "write_posetrack18",
    "write_posetrack17", "joints_present", "make_image_id", "annotation_id", "row_digits",
]

NUM_JOINTS = POSETRACK18.num_joints
# poseval's 15 joint ids (the 2017 `annolist` "id" field), as names in the PoseTrack18 schema.
POSETRACK17_JOINTS = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "head_bottom", "nose", "head_top",
)
# row k of the 17-joint array <-> 2017 id POSETRACK17_TO_18[k]
POSETRACK17_TO_18 = np.array([POSETRACK18.index(n) for n in POSETRACK17_JOINTS])


@dataclass
class PoseTrackFrame:
    """One image of a sequence and the people annotated (or predicted) on it."""

    file_name: str
    image_id: int
    is_labeled: bool
    track_ids: np.ndarray      # (P,) int64
    keypoints: np.ndarray      # (P,17,3) float32 x, y, v
    scores: np.ndarray         # (P,17) float32, NaN = no score in the file
    boxes: np.ndarray          # (P,4) float32 xyxy, NaN = no box
    head_boxes: np.ndarray     # (P,4) float32 xyxy, NaN = no head box
    ignore_regions: list[np.ndarray] = field(default_factory=list)  # polygons, each (K,2) float32
    extra: dict[str, Any] = field(default_factory=dict)              # other image fields, kept as is

    @property
    def num_people(self) -> int:
        return int(self.track_ids.shape[0])

    @classmethod
    def empty(cls, file_name: str, image_id: int, is_labeled: bool = False) -> "PoseTrackFrame":
        return cls(file_name, image_id, is_labeled, np.zeros(0, np.int64),
                   np.zeros((0, NUM_JOINTS, 3), np.float32), np.zeros((0, NUM_JOINTS), np.float32),
                   np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32))


@dataclass
class PoseTrackSequence:
    """All frames of one sequence, in file order (the official evaluation matches frames by position)."""

    name: str
    vid_id: str
    nframes: int
    frames: list[PoseTrackFrame]


def joints_present(keypoints: np.ndarray) -> np.ndarray:
    """(P,J) bool: the joint exists unless stored as (0, 0, 0) (poseval's converter rule)."""
    return ~np.all(keypoints == 0, axis=-1)


def make_image_id(vid_id: int, frame_index: int) -> int:
    """PoseTrack 2018 image id `1SSSSSSFFFF`: a leading 1, six digits of video id, four of frame."""
    return 10_000_000_000 + int(vid_id) * 10_000 + int(frame_index)


def row_digits(most_people: int) -> int:
    """Digits of the person's row in the annotation ids of a file whose most crowded frame holds
    `most_people`: 2 (the official form) up to 100 people, more beyond."""
    return max(2, len(str(most_people - 1)))


def annotation_id(image_id: int, row: int, digits: int) -> int:
    """The id of the annotation of person `row` of image `image_id`; with the file's
    `row_digits` every row fits in its digits, so no two annotations of a file share an id."""
    return int(image_id) * 10 ** digits + row


# ----------------------------------------------------------------------------------------- reading

class _Reader:
    """Validation helpers that name the file in every error."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, problem: str):
        raise UserError(f"{self.source}: {problem}")

    def need(self, obj: dict, key: str, where: str, kind=None):
        if not isinstance(obj, dict) or key not in obj:
            self.fail(f"{where} has no '{key}'")
        value = obj[key]
        if kind is not None and not isinstance(value, kind):
            self.fail(f"{where} '{key}' should be {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
        return value

    def numbers(self, values, shape_len: int | None, where: str) -> np.ndarray:
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            self.fail(f"{where} holds non-numbers")
        if arr.ndim != 1 or (shape_len is not None and arr.size != shape_len):
            self.fail(f"{where} should be {shape_len} numbers, got shape {arr.shape}")
        return arr


def _xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    return np.array([b[0], b[1], b[0] + b[2], b[1] + b[3]], np.float32)


def _polygons(reader: _Reader, xs, ys, where: str) -> list[np.ndarray]:
    if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
        reader.fail(f"{where}: ignore_regions_x/ignore_regions_y should be lists of equal length")
    polys = []
    for k, (px, py) in enumerate(zip(xs, ys)):
        px = reader.numbers(px, None, f"{where} ignore region {k} x")
        py = reader.numbers(py, px.size, f"{where} ignore region {k} y")
        polys.append(np.stack([px, py], axis=1).astype(np.float32))
    return polys


def _read_2018(reader: _Reader, data: dict, name: str) -> PoseTrackSequence:
    images = reader.need(data, "images", "file", list)
    annotations = reader.need(data, "annotations", "file", list)
    categories = reader.need(data, "categories", "file", list)
    if len(categories) != 1 or not isinstance(categories[0], dict):
        reader.fail(f"'categories' should hold exactly one (person) category, got {len(categories)}")
    names = reader.need(categories[0], "keypoints", "category", list)
    unknown = [n for n in names if n not in POSETRACK18.joints]
    if unknown or len(names) not in (15, 17) or len(set(names)) != len(names):
        reader.fail(f"category keypoints should be the 15 or 17 PoseTrack18 joint names, got {names}")
    missing = [n for n in POSETRACK17_JOINTS if n not in names]
    if missing:
        reader.fail(f"category keypoints lack {missing}")
    columns = np.array([POSETRACK18.index(n) for n in names])
    nj = len(names)

    by_image: dict[int, list[dict]] = {}
    for k, ann in enumerate(annotations):
        image_id = reader.need(ann, "image_id", f"annotation {k}")
        if not isinstance(image_id, (int, str)):
            reader.fail(f"annotation {k} 'image_id' should be an integer, got {image_id!r}")
        by_image.setdefault(image_id, []).append(ann)

    frames, vid_id, nframes, seen = [], None, 0, set()
    for i, img in enumerate(images):
        where = f"image {i}"
        image_id = reader.need(img, "id", where)
        if not isinstance(image_id, (int, str)):
            reader.fail(f"{where} 'id' should be an integer, got {image_id!r}")
        if image_id in seen:
            reader.fail(f"{where}: duplicate image id {image_id}")
        seen.add(image_id)
        file_name = reader.need(img, "file_name", where, str)
        if vid_id is None:
            vid_id = str(img.get("vid_id", ""))
            nframes = int(img.get("nframes", len(images)))
        polys = []
        if "ignore_regions_x" in img or "ignore_regions_y" in img:
            polys = _polygons(reader, img.get("ignore_regions_x"), img.get("ignore_regions_y"), where)
        people = by_image.pop(image_id, [])
        p = len(people)
        kp = np.zeros((p, NUM_JOINTS, 3), np.float32)
        sc = np.full((p, NUM_JOINTS), np.nan, np.float32)
        boxes = np.full((p, 4), np.nan, np.float32)
        heads = np.full((p, 4), np.nan, np.float32)
        tids = np.zeros(p, np.int64)
        for r, ann in enumerate(people):
            pw = f"{where} person {r}"
            tid = reader.need(ann, "track_id", pw)
            if isinstance(tid, bool) or not isinstance(tid, (int, float)) or tid != int(tid):
                reader.fail(f"{pw}: track_id should be an integer, got {tid!r}")
            tids[r] = int(tid)
            kp[r, columns] = reader.numbers(reader.need(ann, "keypoints", pw, list), nj * 3,
                                            f"{pw} keypoints").reshape(nj, 3)
            scores = ann.get("scores") or []
            if len(scores):
                sc[r, columns] = reader.numbers(scores, nj, f"{pw} scores")
            if ann.get("bbox") is not None and len(ann["bbox"]):
                boxes[r] = _xywh_to_xyxy(reader.numbers(ann["bbox"], 4, f"{pw} bbox"))
            if ann.get("bbox_head") is not None and len(ann["bbox_head"]):
                heads[r] = _xywh_to_xyxy(reader.numbers(ann["bbox_head"], 4, f"{pw} bbox_head"))
        if not np.all(np.isfinite(kp)):
            reader.fail(f"{where}: keypoints hold NaN or infinity")
        known = {"id", "file_name", "is_labeled", "ignore_regions_x", "ignore_regions_y", "vid_id", "nframes"}
        frames.append(PoseTrackFrame(
            file_name=file_name, image_id=image_id, is_labeled=bool(img.get("is_labeled", p > 0)),
            track_ids=tids, keypoints=kp, scores=sc, boxes=boxes, head_boxes=heads,
            ignore_regions=polys, extra={k: v for k, v in img.items() if k not in known}))
    if by_image:
        reader.fail(f"annotations refer to unknown image ids {sorted(by_image)[:5]}")
    return PoseTrackSequence(name=name, vid_id=vid_id or "", nframes=nframes or len(frames), frames=frames)


def _one(reader: _Reader, obj: dict, key: str, where: str, required: bool = True):
    """2017 files wrap every scalar in a one-element list."""
    if key not in obj:
        if required:
            reader.fail(f"{where} has no '{key}'")
        return None
    value = obj[key]
    if isinstance(value, list):
        if len(value) != 1:
            reader.fail(f"{where} '{key}' should be a one-element list")
        value = value[0]
    return value


def _read_2017(reader: _Reader, data: dict, name: str) -> PoseTrackSequence:
    annolist = reader.need(data, "annolist", "file", list)
    frames = []
    for i, entry in enumerate(annolist):
        where = f"annolist[{i}]"
        if not isinstance(entry, dict):
            reader.fail(f"{where} should be an object")
        image = _one(reader, entry, "image", where)
        file_name = reader.need(image, "name", f"{where} image", str)
        rects = entry.get("annorect") or []
        if not isinstance(rects, list):
            reader.fail(f"{where} 'annorect' should be a list")
        p = len(rects)
        kp = np.zeros((p, NUM_JOINTS, 3), np.float32)
        sc = np.full((p, NUM_JOINTS), np.nan, np.float32)
        heads = np.full((p, 4), np.nan, np.float32)
        tids = np.zeros(p, np.int64)
        for r, rect in enumerate(rects):
            pw = f"{where} annorect {r}"
            if not isinstance(rect, dict):
                reader.fail(f"{pw} should be an object")
            tid = _one(reader, rect, "track_id", pw)
            if isinstance(tid, bool) or not isinstance(tid, (int, float)) or tid != int(tid):
                reader.fail(f"{pw}: track_id should be an integer, got {tid!r}")
            tids[r] = int(tid)
            corners = [_one(reader, rect, k, pw, required=False) for k in ("x1", "y1", "x2", "y2")]
            if all(c is not None for c in corners):
                heads[r] = reader.numbers(corners, 4, f"{pw} head box")
            annopoints = rect.get("annopoints") or []
            if isinstance(annopoints, dict):
                annopoints = [annopoints]
            first = annopoints[0] if isinstance(annopoints, list) and annopoints else {}
            if not isinstance(first, dict):
                reader.fail(f"{pw} 'annopoints' should hold an object with 'point'")
            points = first.get("point") or []
            for q, point in enumerate(points):
                if not isinstance(point, dict):
                    reader.fail(f"{pw} point {q} should be an object")
                jid = _one(reader, point, "id", f"{pw} point {q}")
                if not isinstance(jid, int) or not 0 <= jid < len(POSETRACK17_JOINTS):
                    reader.fail(f"{pw} point {q}: joint id should be 0..14, got {jid!r}")
                col = POSETRACK17_TO_18[jid]
                x, y = (_one(reader, point, k, f"{pw} point {q}") for k in ("x", "y"))
                vis = _one(reader, point, "is_visible", f"{pw} point {q}", required=False)
                values = reader.numbers([x, y, 1 if vis is None else vis], 3, f"{pw} point {q}")
                kp[r, col] = values
                score = _one(reader, point, "score", f"{pw} point {q}", required=False)
                if score is not None:
                    sc[r, col] = reader.numbers([score], 1, f"{pw} point {q} score")[0]
        polys = []
        for k, region in enumerate(entry.get("ignore_regions") or []):
            pts = region.get("point", []) if isinstance(region, dict) else []
            xy = [[_one(reader, pt, "x", f"{where} ignore region {k}"), _one(reader, pt, "y", f"{where} ignore region {k}")]
                  for pt in pts]
            polys.append(np.asarray(xy, np.float32).reshape(-1, 2))
        labeled = _one(reader, entry, "is_labeled", where, required=False)
        imgnum = _one(reader, entry, "imgnum", where, required=False)
        frames.append(PoseTrackFrame(
            file_name=file_name, image_id=int(imgnum) if imgnum is not None else i,
            is_labeled=bool(labeled) if labeled is not None else p > 0, track_ids=tids, keypoints=kp,
            scores=sc, boxes=np.full((p, 4), np.nan, np.float32), head_boxes=heads, ignore_regions=polys))
    vid = Path(frames[0].file_name).parent.name.split("_")[0] if frames else ""
    return PoseTrackSequence(name=name, vid_id=vid, nframes=len(frames), frames=frames)


def sequence_from_dict(data: Any, source: str = "<memory>") -> PoseTrackSequence:
    """Parse a loaded JSON object (2018 `images`/`annotations` or 2017 `annolist`)."""
    reader = _Reader(source)
    if not isinstance(data, dict):
        reader.fail("top level should be a JSON object")
    name = Path(source).stem
    if "annolist" in data:
        return _read_2017(reader, data, name)
    if "images" in data:
        return _read_2018(reader, data, name)
    reader.fail("neither a PoseTrack 2018 file ('images') nor a 2017 file ('annolist')")


def load_sequence(path: str | os.PathLike) -> PoseTrackSequence:
    """Load one PoseTrack sequence file, either form; UserError naming the file when it is malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        utf16 = exc.object[:2] in (b"\xff\xfe", b"\xfe\xff")
        raise UserError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
                        + ("; it looks like UTF-16, save it as UTF-8" if utf16 else "")) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return sequence_from_dict(data, str(path))


def load_sequence_dir(folder: str | os.PathLike) -> dict[str, PoseTrackSequence]:
    """Every `*.json` in a folder, keyed by file name (the evaluation pairs GT and predictions by it)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    return {p.name: load_sequence(p) for p in sorted(folder.glob("*.json"))}


# ----------------------------------------------------------------------------------------- writing

def _num(v: float) -> float | int:
    """Plain JSON number; integral values written as ints keep files small."""
    v = float(v)
    return int(v) if v.is_integer() else round(v, 3)


def _xyxy_to_xywh(b: np.ndarray) -> list:
    return [_num(b[0]), _num(b[1]), _num(b[2] - b[0]), _num(b[3] - b[1])]


def to_posetrack18_dict(seq: PoseTrackSequence) -> dict:
    """The PoseTrack 2018 JSON object for one sequence, with the single `person` category."""
    images, annotations = [], []
    digits = row_digits(max((frame.num_people for frame in seq.frames), default=0))
    for frame in seq.frames:
        image = dict(frame.extra)
        image.update({
            "file_name": frame.file_name, "id": int(frame.image_id), "frame_id": int(frame.image_id),
            "vid_id": seq.vid_id, "nframes": int(seq.nframes), "is_labeled": bool(frame.is_labeled),
            "ignore_regions_x": [[_num(v) for v in poly[:, 0]] for poly in frame.ignore_regions],
            "ignore_regions_y": [[_num(v) for v in poly[:, 1]] for poly in frame.ignore_regions],
        })
        images.append(image)
        for r in range(frame.num_people):
            ann = {
                "image_id": int(frame.image_id), "id": annotation_id(frame.image_id, r, digits),
                "track_id": int(frame.track_ids[r]), "category_id": 1,
                "keypoints": [_num(v) for v in frame.keypoints[r].reshape(-1)],
                "scores": [] if np.all(np.isnan(frame.scores[r])) else
                          [_num(v) for v in np.nan_to_num(frame.scores[r], nan=0.0)],
            }
            if np.all(np.isfinite(frame.boxes[r])):
                ann["bbox"] = _xyxy_to_xywh(frame.boxes[r])
            if np.all(np.isfinite(frame.head_boxes[r])):
                ann["bbox_head"] = _xyxy_to_xywh(frame.head_boxes[r])
            annotations.append(ann)
    category = {
        "supercategory": "person", "id": 1, "name": "person", "keypoints": list(POSETRACK18.joints),
        "skeleton": [[a + 1, b + 1] for a, b in POSETRACK18.skeleton],
    }
    return {"images": images, "annotations": annotations, "categories": [category]}


def to_posetrack17_dict(seq: PoseTrackSequence) -> dict:
    """The PoseTrack 2017 `annolist` object: 15 joints (no ears), absent joints left out."""
    annolist = []
    present = [joints_present(f.keypoints) for f in seq.frames]
    for frame, has in zip(seq.frames, present):
        rects = []
        for r in range(frame.num_people):
            points = []
            for jid, col in enumerate(POSETRACK17_TO_18):
                if not has[r, col]:
                    continue
                x, y, v = frame.keypoints[r, col]
                point = {"id": [jid], "x": [_num(x)], "y": [_num(y)], "is_visible": [_num(v)]}
                if np.isfinite(frame.scores[r, col]):
                    point["score"] = [_num(frame.scores[r, col])]
                points.append(point)
            rect = {"track_id": [int(frame.track_ids[r])], "annopoints": [{"point": points}]}
            if np.all(np.isfinite(frame.head_boxes[r])):
                x1, y1, x2, y2 = frame.head_boxes[r]
                rect.update({"x1": [_num(x1)], "y1": [_num(y1)], "x2": [_num(x2)], "y2": [_num(y2)]})
            finite_scores = frame.scores[r][np.isfinite(frame.scores[r])]
            if finite_scores.size:
                rect["score"] = [_num(finite_scores.mean())]
            rects.append(rect)
        entry = {"image": [{"name": frame.file_name}], "imgnum": [int(frame.image_id)],
                 "annorect": rects, "is_labeled": [int(frame.is_labeled)]}
        if frame.ignore_regions:
            entry["ignore_regions"] = [
                {"point": [{"x": [_num(x)], "y": [_num(y)]} for x, y in poly]} for poly in frame.ignore_regions]
        annolist.append(entry)
    return {"annolist": annolist}


def write_posetrack18(path: str | os.PathLike, seq: PoseTrackSequence) -> None:
    write_json_atomic(path, to_posetrack18_dict(seq))


def write_posetrack17(path: str | os.PathLike, seq: PoseTrackSequence) -> None:
    write_json_atomic(path, to_posetrack17_dict(seq))

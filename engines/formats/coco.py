"""The one reader of COCO-format annotation files (COCO keypoints, and the synthetic people the
trainer writes): the `images` table and the person boxes, with one-line errors that name the file
and the entry. Keypoint records (trainer.datasets.coco), detector targets (trainer.detection),
`python -m engines parity` and `python -m engines calibrate` read through it. (pycocotools scores
results in engines.formats.coco_eval; its reader validates nothing and prints to stdout.)"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.errors import UserError

__all__ = ["read_json", "CocoImages", "load_coco_images", "entry_error", "PersonBoxes", "load_person_boxes"]


def read_json(path: Path):
    if not path.is_file():
        raise UserError(f"annotation file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None


class CocoImages:
    """The `images` table: ids, file paths and sizes, in file order."""

    def __init__(self, ids: np.ndarray, paths: list[str], sizes: np.ndarray):
        self.ids, self.paths, self.sizes = ids, paths, sizes
        self.row = {int(i): k for k, i in enumerate(ids)}


def entry_error(path: Path, table: str, k: int, entry, what: str) -> UserError:
    ident = entry.get("id") if isinstance(entry, dict) else None
    return UserError(f"{path}: {table}[{k}]{f' (id {ident})' if ident is not None else ''}: {what}")


def load_coco_images(data: dict, ann_file: Path, images_dir: Path | None) -> CocoImages:
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UserError(f"{ann_file}: not a COCO annotation file (no 'images' list)")
    base = images_dir if images_dir is not None else ann_file.parent
    ids, paths, sizes = [], [], []
    for k, im in enumerate(data["images"]):
        try:
            ids.append(int(im["id"]))
            paths.append(str(base / im["file_name"]))
            sizes.append((int(im["width"]), int(im["height"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise entry_error(ann_file, "images", k, im, f"needs id, file_name, width, height ({exc!r})") from None
    return CocoImages(np.array(ids, np.int64), paths, np.array(sizes, np.float32).reshape(-1, 2))


@dataclass
class PersonBoxes:
    """Per image: path, COCO id, the person boxes (K,4) xyxy in image pixels, and the boxes of
    people that do not count (crowd, tiny, no labelled joint), which a match may neither reward
    nor punish."""
    image_paths: list[str]
    image_ids: np.ndarray
    boxes: list[np.ndarray]
    ground_truth: dict            # the annotation file with untrainable people marked as crowd
    ignored: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.image_paths)


def load_person_boxes(ann_file: Path, images_dir: Path | None) -> PersonBoxes:
    """People of a COCO file as box targets: non-crowd, category 1, at least 2x2 pixels, and with
    a labelled keypoint where the file has keypoints (fully hidden people are not detectable).
    The returned ground truth marks the others as crowd, which COCO evaluation ignores."""
    data = read_json(ann_file)
    images = load_coco_images(data, ann_file, images_dir)
    anns = data.get("annotations")
    if not isinstance(anns, list):
        raise UserError(f"{ann_file}: not a COCO annotation file (no 'annotations' list)")
    boxes, ignored = [[] for _ in images.paths], [[] for _ in images.paths]
    for k, ann in enumerate(anns):
        try:
            row = images.row[int(ann["image_id"])]
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{ann_file}: annotations[{k}]: needs a known image_id and a bbox ({exc!r})") from None
        usable = (not ann.get("iscrowd", 0) and ann.get("category_id", 1) == 1 and w >= 2 and h >= 2
                  and ann.get("num_keypoints", 1) > 0)
        if usable:
            boxes[row].append((x, y, x + w, y + h))
        else:
            ann["iscrowd"] = 1
            if ann.get("category_id", 1) == 1:
                ignored[row].append((x, y, x + w, y + h))
    return PersonBoxes(images.paths, images.ids, _box_arrays(boxes), data, _box_arrays(ignored))


def _box_arrays(rows: list[list]) -> list[np.ndarray]:
    return [np.array(boxes, np.float32).reshape(-1, 4) for boxes in rows]

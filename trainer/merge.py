"""`python -m trainer merge A.json B.json:N ... --out OUT.json`: one COCO annotation file from several.

Trains on several sets at once (lite_w32's crowd stages: the 2000 training frames with 1000 of
the 3000 crowded ones, then with all of them). `FILE:N` takes N of that file's images, drawn at
random (`random.Random(seed).sample`, in drawn order) with their people. Image and annotation ids
are renumbered in order; each image's `file_name` is rewritten relative to the output file's
folder, so the merged file is read the way its sources are read with `DATASET.TRAIN_IMAGES ""`:
images found from the annotation file's folder, as `python -m trainer synth images` writes them.
"""

from __future__ import annotations

import argparse
import os
import random
import re
from pathlib import Path

from engines.errors import UserError
from engines.formats.coco import entry_error, read_json
from engines.common.files import write_json_atomic

__all__ = ["main", "merge_coco"]


def parse_source(text: str) -> tuple[Path, int | None]:
    """FILE or FILE:N (N images drawn at random)."""
    m = re.fullmatch(r"(.+):(\d+)", text)
    return (Path(m.group(1)), int(m.group(2))) if m else (Path(text), None)


def merge_coco(sources: list[tuple[Path, int | None]], out: Path, seed: int = 0) -> dict:
    """The merged annotation dict for a file written at `out` (categories of the first source);
    each source is a file and how many of its images to draw (None: all, in file order)."""
    merged = {"images": [], "annotations": [], "categories": None}
    for src, count in sources:
        data = read_json(src)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise UserError(f"{src}: not a COCO annotation file (no 'images' list)")
        merged["categories"] = merged["categories"] or data.get("categories", [])
        rows = range(len(data["images"]))
        if count is not None:
            if count > len(rows):
                raise UserError(f"{src}:{count}: the file has only {len(rows)} images")
            rows = random.Random(seed).sample(rows, count)
        new_id = {}
        for k in rows:
            image = data["images"][k]
            if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
                raise entry_error(src, "images", k, image, "needs id and file_name")
            new_id[image["id"]] = len(merged["images"]) + 1
            path = os.path.relpath(src.parent / image["file_name"], out.parent)
            merged["images"].append({**image, "id": new_id[image["id"]], "file_name": Path(path).as_posix()})
        known = {image.get("id") for image in data["images"] if isinstance(image, dict)}
        for k, ann in enumerate(data.get("annotations", [])):
            if not isinstance(ann, dict) or ann.get("image_id") not in known:
                raise entry_error(src, "annotations", k, ann, "its image_id names no image")
            if ann["image_id"] not in new_id:
                continue   # an image not drawn
            merged["annotations"].append({**ann, "id": len(merged["annotations"]) + 1,
                                          "image_id": new_id[ann["image_id"]]})
    return merged


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer merge",
                                     description="Merge COCO annotation files into one (ids renumbered, "
                                                 "image paths kept valid).")
    parser.add_argument("sources", nargs="+", help="annotations.json files; FILE:N draws N of its images")
    parser.add_argument("--seed", type=int, default=0, help="for the images FILE:N draws (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="file to write, e.g. data/synth/mix/annotations.json")
    args = parser.parse_args(argv)
    out = args.out.absolute()
    sources = [(path.absolute(), count) for path, count in map(parse_source, args.sources)]
    merged = merge_coco(sources, out, args.seed)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out, merged)
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {args.out}: {len(merged['images'])} images, {len(merged['annotations'])} annotations "
          f"from {len(args.sources)} files")
    return 0

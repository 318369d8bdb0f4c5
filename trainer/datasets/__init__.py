"""Build the training and validation datasets a config names.

| DATASET.NAME | annotation format | validation boxes |
| --- | --- | --- |
| coco | COCO keypoints JSON | DET_FILE detections, or ground truth with TEST.USE_GT_BBOX |
| synthetic | COCO keypoints JSON written by `python -m trainer synth images` | same as coco |
| posetrack18 | folder of per-sequence PoseTrack 2018 JSON files | same as coco (detections as COCO results) |
| mpii | official HRNet MPII annot JSON (list of {image, center, scale, joints, joints_vis}) | ground truth |
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engines.errors import UserError
from engines.pose.schemas import KeypointSchema, get_schema
from trainer.augment import TopDownTransform
from trainer.datasets.base import JointsDataset, PersonRecords, resolve

__all__ = ["DatasetBundle", "build_datasets", "JointsDataset", "PersonRecords"]

SCHEMA_OF = {"coco": "coco17", "synthetic": "coco17", "posetrack18": "posetrack18", "mpii": "mpii16"}


@dataclass
class DatasetBundle:
    train: JointsDataset
    val: JointsDataset
    schema: KeypointSchema
    val_annotations: Path | dict | None  # COCO-form ground truth for AP (None: loss only)


def _images_dir(root: str, path: str) -> Path | None:
    if not path:
        return None
    folder = resolve(root, path)
    if not folder.is_dir():
        raise UserError(f"image folder not found: {folder}")
    return folder


def _load(cfg, split: str, schema: KeypointSchema, image_size) -> tuple[PersonRecords, Path | dict | None]:
    d = cfg.DATASET
    ann = resolve(d.ROOT, getattr(d, f"{split}_ANNOTATIONS"))
    images = _images_dir(d.ROOT, getattr(d, f"{split}_IMAGES"))
    if not ann.exists():
        raise UserError(f"DATASET.{split}_ANNOTATIONS not found: {ann}")
    if d.NAME in ("coco", "synthetic"):
        from trainer.datasets.coco import load_coco_people, load_detections

        if split == "VAL" and not cfg.TEST.USE_GT_BBOX:
            if not d.DET_FILE:
                raise UserError("validation needs DATASET.DET_FILE (person detections) or TEST.USE_GT_BBOX true")
            records = load_detections(resolve(d.ROOT, d.DET_FILE), ann, images, schema, image_size,
                                      cfg.TEST.IMAGE_THRE)
        else:
            records = load_coco_people(ann, images, schema, image_size)
        return records, ann
    if d.NAME == "posetrack18":
        from trainer.datasets.posetrack import load_posetrack_split

        return load_posetrack_split(cfg, ann, images, schema, image_size, split == "VAL")
    from trainer.datasets.mpii import load_mpii

    return load_mpii(ann, images, schema), None


def build_datasets(cfg) -> DatasetBundle:
    """Both datasets for `cfg`; UserError for missing paths or malformed annotations."""
    preset = cfg.preset()
    schema = get_schema(SCHEMA_OF[cfg.DATASET.NAME])
    if schema.num_joints != preset.num_joints:
        raise UserError(f"dataset {cfg.DATASET.NAME} has {schema.num_joints} joints but preset "
                        f"{preset.name} predicts {preset.num_joints}")
    train_records, _ = _load(cfg, "TRAIN", schema, preset.image_size)
    val_records, val_ann = _load(cfg, "VAL", schema, preset.image_size)
    if len(train_records) == 0:
        raise UserError(f"no annotated people in {resolve(cfg.DATASET.ROOT, cfg.DATASET.TRAIN_ANNOTATIONS)}")
    rgb = cfg.DATASET.COLOR_RGB
    train = JointsDataset(train_records, TopDownTransform.from_config(cfg, schema, True), cfg.SEED, rgb)
    val = JointsDataset(val_records, TopDownTransform.from_config(cfg, schema, False), cfg.SEED, rgb)
    return DatasetBundle(train, val, schema, val_ann)

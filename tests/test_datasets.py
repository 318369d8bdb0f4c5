"""Datasets and augmentation: COCO/MPII loading, malformed files, the official crop/target chain."""

import json
from pathlib import Path

import numpy as np
import pytest

from engines.pose.codec import decode_heatmaps
from engines.errors import UserError
from engines.pose.schemas import COCO17, MPII16
from trainer.augment import TopDownTransform
from trainer.datasets.base import JointsDataset
from trainer.datasets.coco import load_coco_people, load_detections
from trainer.datasets.mpii import load_mpii

COCO = Path(__file__).parents[2] / "shared" / "data" / "coco_sample"
needs_coco = pytest.mark.skipif(not (COCO / "test_coco.json").exists(), reason="shared coco_sample absent")
SIZE = (192, 256)


@needs_coco
def test_coco_ground_truth_people():
    ann = json.loads((COCO / "test_coco.json").read_text())
    expected = [a for a in ann["annotations"] if max(a["keypoints"]) > 0]
    rec = load_coco_people(COCO / "test_coco.json", None, COCO17, SIZE)
    assert len(rec) == len(expected)
    first = expected[0]
    x, y, w, h = first["bbox"]
    assert np.allclose(rec.centers[0], [x + (w - 1) / 2, y + (h - 1) / 2], atol=1e-3)
    # aspect fixed to 192/256 and padded 1.25x, in units of 200 px
    assert rec.scales[0][0] / rec.scales[0][1] == pytest.approx(0.75, rel=1e-5)
    assert rec.scales[0].max() * 200 >= max(w - 1, (h - 1) * 0.75) * 1.25 - 1e-3
    kp = np.array(first["keypoints"], np.float32).reshape(17, 3)
    assert np.array_equal(rec.joints[0, :, :2], kp[:, :2])
    assert np.array_equal(rec.vis[0, :, 0], np.minimum(kp[:, 2], 1))
    assert all(Path(p).exists() for p in rec.image_paths)


@needs_coco
def test_coco_detections_for_validation():
    dets = json.loads((COCO / "test_coco_det_AP_H_56.json").read_text())
    rec = load_detections(COCO / "test_coco_det_AP_H_56.json", COCO / "test_coco.json", None, COCO17, SIZE, 0.5)
    assert len(rec) == sum(d["score"] >= 0.5 and d["category_id"] == 1 for d in dets)
    assert rec.scores.min() >= 0.5 and not rec.vis.any()


def test_malformed_annotations_name_file_and_entry(tmp_path):
    ann = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
           "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 2, 30, 40],
                            "keypoints": [1, 1, 2] * 17},
                           {"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 2, 30, 40],
                            "keypoints": [1, 1, 2] * 16}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(ann))
    with pytest.raises(UserError, match=r"bad.json: annotations\[1\] \(id 7\): 48 keypoint values, expected 51"):
        load_coco_people(path, None, COCO17, SIZE)
    ann["annotations"][1]["keypoints"] = [1, 1, 2] * 17
    ann["annotations"][1]["image_id"] = 99
    path.write_text(json.dumps(ann))
    with pytest.raises(UserError, match=r"annotations\[1\] \(id 7\): missing or unknown 99"):
        load_coco_people(path, None, COCO17, SIZE)
    path.write_text("{not json")
    with pytest.raises(UserError, match="bad.json is not valid JSON"):
        load_coco_people(path, None, COCO17, SIZE)
    with pytest.raises(UserError, match="annotation file not found"):
        load_coco_people(tmp_path / "none.json", None, COCO17, SIZE)


@needs_coco
def test_validation_crop_targets_decode_back_to_ground_truth():
    rec = load_coco_people(COCO / "test_coco.json", None, COCO17, SIZE)
    ds = JointsDataset(rec, TopDownTransform(COCO17, SIZE, (48, 64), 2.0, train=False))
    for i in range(3):
        s = ds[i]
        hm = (s["target"].numpy() * (s["target_weight"].numpy()[:, :, None] > 0))[None]
        kp = decode_heatmaps(hm, s["center"].numpy()[None], s["scale"].numpy()[None])[0]
        seen = (rec.vis[i, :, 0] > 0) & (kp[:, 2] > 0.99)  # labelled, peak inside the heatmap
        stride = s["scale"].numpy()[0] * 200 / 48  # image px per heatmap px
        assert np.abs(kp[seen, :2] - rec.joints[i, seen, :2]).max() <= stride
        assert s["input"].shape == (3, 256, 192) and abs(float(s["input"].mean())) < 3


@needs_coco
def test_training_augmentation_is_seeded_and_flips_consistently():
    rec = load_coco_people(COCO / "test_coco.json", None, COCO17, SIZE)
    tf = TopDownTransform(COCO17, SIZE, (48, 64), 2.0, train=True, prob_rotation=0.0, prob_half_body=0.0)
    ds = JointsDataset(rec, tf, seed=3)
    a, b = ds[0], ds[0]
    assert np.array_equal(a["input"], b["input"]) and np.array_equal(a["target"], b["target"])
    flips = 0
    for epoch in range(8):
        ds.set_epoch(epoch)
        s = ds[0]
        hm = (s["target"].numpy() * (s["target_weight"].numpy()[:, :, None] > 0))[None]
        kp = decode_heatmaps(hm, s["center"].numpy()[None], s["scale"].numpy()[None])[0]
        truth, seen = rec.joints[0, :, :2].copy(), rec.vis[0, :, 0] > 0
        width = 640  # 000000000785.jpg
        mirrored = abs(s["center"][0] - rec.centers[0][0]) > 1
        if mirrored:
            flips += 1
            perm = COCO17.flip_permutation()
            truth, seen = truth[perm], seen[perm]
            truth[:, 0] = width - truth[:, 0] - 1
        seen &= kp[:, 2] > 0.99  # peak inside the heatmap (scaling can push joints out)
        stride = s["scale"].numpy()[0] * 200 / 48
        assert np.abs(kp[seen, :2] - truth[seen]).max() <= stride
    assert 0 < flips < 8


def test_mpii_official_annotation_form(tmp_path):
    joints = [[100 + 5 * j, 50 + 10 * j] for j in range(16)]
    entry = {"image": "x.jpg", "center": [120.0, 110.0], "scale": 1.5, "joints": joints,
             "joints_vis": [1] * 15 + [0]}
    path = tmp_path / "train.json"
    path.write_text(json.dumps([entry]))
    rec = load_mpii(path, tmp_path / "images", MPII16)
    assert np.allclose(rec.centers[0], [119.0, 110.0 + 15 * 1.5 - 1])
    assert np.allclose(rec.scales[0], [1.875, 1.875])
    assert np.allclose(rec.joints[0, 3, :2], [114, 79]) and rec.vis[0, 15, 0] == 0
    assert rec.image_paths == [str(tmp_path / "images" / "x.jpg")]
    path.write_text(json.dumps([entry, dict(entry, joints=joints[:3])]))
    with pytest.raises(UserError, match=r"train.json: entry \[1\] \(x.jpg\): bad value"):
        load_mpii(path, None, MPII16)


POSETRACK = Path(__file__).parents[2] / "shared" / "data" / "posetrack18_sample"


@pytest.mark.skipif(not (POSETRACK / "annotations" / "val").is_dir(), reason="shared posetrack18_sample absent")
def test_posetrack18_sequences_and_ignore_regions():
    from engines.pose.schemas import POSETRACK18
    from trainer.config import Config, apply_overrides
    from trainer.datasets.posetrack import load_posetrack_split
    from engines.formats.coco_eval import coco_keypoint_ap
    from trainer.evaluate import to_coco_results

    cfg = apply_overrides(Config(), ["DATASET.NAME", "posetrack18", "DATASET.ROOT", str(POSETRACK),
                                     "DATASET.DET_FILE", "annotations/test_posetrack18_human_detections.json"])
    rec, gt = load_posetrack_split(cfg, POSETRACK / "annotations" / "val", POSETRACK, POSETRACK18, SIZE, False)
    assert len(rec) == len(gt["annotations"]) == 14 and all(Path(p).exists() for p in rec.image_paths)
    kp = rec.joints.copy()
    kp[..., 2] = rec.vis[..., 0]
    pred = {"keypoints": kp, "centers": rec.centers, "scales": rec.scales, "scores": rec.scores,
            "image_ids": rec.image_ids[rec.person_image]}
    results = to_coco_results(pred, POSETRACK18.sigmas_array, 0.2, 0.9)
    assert coco_keypoint_ap(gt, results, POSETRACK18.sigmas_array)["AP"] == pytest.approx(1.0)
    dets = json.loads((POSETRACK / "annotations" / "test_posetrack18_human_detections.json").read_text())
    kept, _ = load_posetrack_split(cfg, POSETRACK / "annotations" / "val", POSETRACK, POSETRACK18, SIZE, True)
    assert 0 < len(kept) < len(dets)  # detections inside ignore regions are dropped
    assert not kept.vis.any()

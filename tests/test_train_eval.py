"""Validation metric: ground truth as predictions through rescoring, OKS-NMS and pycocotools."""

from pathlib import Path

import pytest

from engines.pose.schemas import COCO17
from trainer.datasets.coco import load_coco_people
from engines.formats.coco_eval import coco_keypoint_ap
from trainer.evaluate import to_coco_results

COCO = Path(__file__).parents[2] / "shared" / "data" / "coco_sample"
pytestmark = pytest.mark.skipif(not (COCO / "test_coco.json").exists(), reason="shared coco_sample absent")


def gt_predictions(shift: float = 0.0) -> dict:
    rec = load_coco_people(COCO / "test_coco.json", None, COCO17, (192, 256))
    kp = rec.joints.copy()
    kp[..., :2] += shift
    kp[..., 2] = rec.vis[..., 0]  # labelled joints are confident, the rest score 0
    return {"keypoints": kp, "centers": rec.centers, "scales": rec.scales, "scores": rec.scores,
            "image_ids": rec.image_ids[rec.person_image]}


def test_ground_truth_as_predictions_gives_ap_one():
    pred = gt_predictions()
    results = to_coco_results(pred, COCO17.sigmas_array, in_vis_thre=0.2, oks_thre=0.9)
    assert len(results) == len(pred["keypoints"])  # OKS-NMS keeps distinct people
    stats = coco_keypoint_ap(COCO / "test_coco.json", results)
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)


def test_displaced_predictions_lose_ap():
    results = to_coco_results(gt_predictions(shift=12.0), COCO17.sigmas_array, 0.2, 0.9)
    assert coco_keypoint_ap(COCO / "test_coco.json", results)["AP"] < 0.9
    assert coco_keypoint_ap(COCO / "test_coco.json", [])["AP"] == 0.0

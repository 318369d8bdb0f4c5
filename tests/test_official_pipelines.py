"""The real-world path equals the official pipelines on real images (../shared, skipped without it):

- YOLOX-Nano with its real COCO weights through `yolox:FILE`: the network input, the person boxes
  before NMS and after it at each of four thresholds, against the official YOLOX code's
  (../shared/fixtures/yolox_official);
- Lite-HRNet-18 from an mmpose 1.x checkpoint through `load_pose(FILE)`: crops, heatmaps and
  keypoints in image pixels, flip test on and off, against mmpose 1.3.2's own `inference_topdown`
  (../shared/fixtures/mmpose_topdown).
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.common.boxes import box_iou
from engines.detectors import load_detector
from engines.pose.codec import decode_heatmaps, fuse_flip
from engines.pose.geometry import box_to_center_scale, crop_people
from engines.pose.loading import load_pose
from engines.pose.normalization import normalize_crops

SHARED = Path(__file__).resolve().parents[2] / "shared"
YOLOX_FILE = SHARED / "models" / "yolox_nano" / "yolox_nano.onnx"
YOLOX_FIXTURE = SHARED / "fixtures" / "yolox_official"
MMPOSE_FIXTURE = SHARED / "fixtures" / "mmpose_topdown"
needs_yolox = pytest.mark.skipif(not (YOLOX_FILE.is_file() and YOLOX_FIXTURE.is_dir()),
                                 reason="../shared YOLOX-Nano model or its official-boxes fixture absent")
needs_mmpose = pytest.mark.skipif(not MMPOSE_FIXTURE.is_dir(), reason="../shared/fixtures/mmpose_topdown absent")


# ------------------------------------------------------------------------------------------ YOLOX

@pytest.fixture(scope="module")
def yolox_official():
    boxes = json.loads((YOLOX_FIXTURE / "yolox_nano_official_boxes.json").read_text())
    return boxes, np.load(YOLOX_FIXTURE / "yolox_nano_official_inputs.npz")


def clamped(boxes, shape_hw):
    """Official boxes as this project reports them: clamped to the frame."""
    boxes = np.array(boxes, np.float32).reshape(-1, 5)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, shape_hw[1])
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, shape_hw[0])
    return boxes


def assert_same_boxes(ours, official):
    assert len(ours) == len(official)
    if len(ours):
        assert box_iou(ours[:, :4], official[:, :4]).diagonal().min() >= 0.999
        np.testing.assert_allclose(ours[:, 4], official[:, 4], atol=1e-5, rtol=0)


@needs_yolox
def test_yolox_gives_the_official_boxes_on_real_images(yolox_official):
    official, inputs = yolox_official
    detector = load_detector(f"yolox:{YOLOX_FILE}", score_thresh=official["score_thr"])
    for name, expected in official["images"].items():
        frame = cv2.imread(str(SHARED / "data" / name))
        batch, _ = detector.inputs([frame])
        np.testing.assert_array_equal(batch[0], inputs[name].astype(np.float32))   # the letterbox, to the pixel
        candidates = detector.candidates([frame])[0]
        candidates = candidates[candidates[:, 4] > official["score_thr"]]
        candidates = candidates[np.argsort(-candidates[:, 4], kind="stable")]
        assert_same_boxes(candidates, np.array(expected["before_nms_xyxy_score"], np.float32))
        for threshold in official["nms_thresholds"]:
            detector.nms_thresh = threshold
            assert_same_boxes(detector.detect(frame), clamped(expected[f"nms_{threshold}"], expected["shape_hw"]))


# ------------------------------------------------------------------------------------------ mmpose

@pytest.fixture(scope="module")
def mmpose_reference():
    meta = json.loads((MMPOSE_FIXTURE / "litehrnet18_topdown_reference.json").read_text())
    arrays = np.load(MMPOSE_FIXTURE / "litehrnet18_topdown_reference.npz")
    images = [(item["file"][:-4], cv2.imread(str(SHARED / "data" / "coco_sample" / item["file"])))
              for item in meta["images"]]
    return meta, arrays, images


@pytest.fixture(scope="module")
def mmpose_checkpoint_estimators():
    path = MMPOSE_FIXTURE / "litehrnet18_seeded_mmpose1x.pth"
    return {flip: load_pose(path, decode="standard", flip_test=flip, backend="torch") for flip in (False, True)}


@needs_mmpose
def test_crops_are_mmposes_but_for_opencv_rounding(mmpose_reference):
    meta, arrays, images = mmpose_reference
    size = tuple(meta["codec"]["input_size"])
    exact, values, differing = 0, 0, 0
    for stem, frame in images:
        centers, scales = box_to_center_scale(arrays[f"{stem}/boxes_xyxy"], size, rule="mmpose")
        ours = crop_people(frame, centers, scales, size).transpose(0, 3, 1, 2).astype(int)
        theirs = arrays[f"{stem}/crops_uint8_bgr_chw"].astype(int)
        difference = np.abs(ours - theirs)
        exact += int((difference.reshape(len(ours), -1).max(axis=1) == 0).sum())
        values += difference.size
        differing += int((difference > 0).sum())
        assert difference.max() <= 8
    # 12 of the 14 people to the last bit; two differ in one row of pixels at a fixed-point
    # rounding edge (the same with OpenCV 4.10, which made the fixture, and 4.14)
    assert exact >= 12 and differing / values < 5e-4


@needs_mmpose
@pytest.mark.parametrize("flip", [False, True], ids=["no-flip", "flip"])
def test_from_mmposes_crops_heatmaps_and_keypoints_are_mmposes(mmpose_reference, mmpose_checkpoint_estimators, flip):
    meta, arrays, images = mmpose_reference
    estimator = mmpose_checkpoint_estimators[flip]
    mode = "flip" if flip else "noflip"
    for stem, _ in images:
        crops = arrays[f"{stem}/crops_uint8_bgr_chw"].transpose(0, 2, 3, 1)
        mean, std = np.array(meta["data_preprocessor"]["mean"]) / 255, np.array(meta["data_preprocessor"]["std"]) / 255
        heatmaps = estimator.heatmaps(normalize_crops(crops, mean, std))
        np.testing.assert_allclose(heatmaps, arrays[f"{stem}/{mode}/heatmaps"], atol=1e-6, rtol=0)
        centers, scales = box_to_center_scale(arrays[f"{stem}/boxes_xyxy"], estimator.preset.image_size, rule="mmpose")
        keypoints = decode_heatmaps(arrays[f"{stem}/{mode}/heatmaps"], centers, scales, "standard", "mmpose")
        np.testing.assert_allclose(keypoints[..., :2], arrays[f"{stem}/{mode}/keypoints"], atol=0.01, rtol=0)
        np.testing.assert_array_equal(keypoints[..., 2], arrays[f"{stem}/{mode}/scores"])


@needs_mmpose
@pytest.mark.parametrize("flip", [False, True], ids=["no-flip", "flip"])
def test_boxes_to_keypoints_end_to_end_are_mmposes(mmpose_reference, mmpose_checkpoint_estimators, flip):
    """The whole path through load_pose(FILE): every joint within 0.01 px, every score within
    1e-3 of its value where the crop is mmpose's to the bit, and within 2e-4 where a row of the
    crop differs by OpenCV's rounding (above)."""
    meta, arrays, images = mmpose_reference
    estimator = mmpose_checkpoint_estimators[flip]
    assert estimator.processing.spec.rule == "mmpose"     # found from the file's mmpose keys
    mode = "flip" if flip else "noflip"
    for stem, frame in images:
        boxes = arrays[f"{stem}/boxes_xyxy"]
        keypoints = estimator.estimate(frame, boxes)
        np.testing.assert_allclose(keypoints[..., :2], arrays[f"{stem}/{mode}/keypoints"], atol=0.01, rtol=0)
        centers, scales = box_to_center_scale(boxes, estimator.preset.image_size, rule="mmpose")
        same_crop = (crop_people(frame, centers, scales, estimator.preset.image_size).transpose(0, 3, 1, 2)
                     == arrays[f"{stem}/crops_uint8_bgr_chw"]).all(axis=(1, 2, 3))
        expected = arrays[f"{stem}/{mode}/scores"]
        error = np.abs(keypoints[..., 2] - expected)
        assert (error[same_crop] <= 1e-3 * np.abs(expected[same_crop])).all()
        assert error.max() <= 2e-4


@needs_mmpose
def test_the_official_rule_misses_mmposes_keypoints_only_where_the_rules_differ(mmpose_reference):
    """Decoded by the official HRNet rule, mmpose's own heatmaps give other keypoints exactly at
    joints with no positive response (origin, not (-1, -1)) and peaks by the heatmap's edge (the
    quarter step on one axis): why the rule follows the family."""
    meta, arrays, images = mmpose_reference
    width, height = meta["codec"]["heatmap_size"]
    differ = edge = silent = 0
    for stem, _ in images:
        heatmaps = arrays[f"{stem}/noflip/heatmaps"]
        centers, scales = box_to_center_scale(arrays[f"{stem}/boxes_xyxy"], (192, 256), rule="mmpose")
        official = decode_heatmaps(heatmaps, centers, scales, "standard", "hrnet")
        wrong = np.abs(official[..., :2] - arrays[f"{stem}/noflip/keypoints"]).max(axis=2) > 0.01
        flat = heatmaps.reshape(*heatmaps.shape[:2], -1)
        y, x = np.divmod(flat.argmax(axis=2), width)
        no_response = flat.max(axis=2) <= 0
        by_edge = ~no_response & ((x <= 1) | (x >= width - 2) | (y <= 1) | (y >= height - 2))
        assert not (wrong & ~no_response & ~by_edge).any()
        differ, edge, silent = differ + wrong.sum(), edge + (wrong & by_edge).sum(), silent + (wrong & no_response).sum()
    assert edge > 0 and silent > 0 and differ == edge + silent

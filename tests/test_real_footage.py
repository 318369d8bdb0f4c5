"""Real people: the real YOLOX-Nano (../shared/models) on the real COCO and PoseTrack18 samples of
../shared/data, and `python -m tracker` on the PoseTrack18 frames with it. Skipped without ../shared.
Only the boxes are real-world here: the pose model is the bundled one (the real-world pose weights
are fetched on first use, which these machines cannot)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.common.boxes import box_iou
from engines.detectors import load_detector
from engines.formats.posetrack import load_sequence
from engines.models.catalogue import CATALOGUE
from engines.tools.calibrate import load_boxes

SHARED = Path(__file__).resolve().parents[2] / "shared"
NANO = SHARED / "models" / "yolox_nano" / "yolox_nano.onnx"
COCO = SHARED / "data" / "coco_sample"
POSETRACK = SHARED / "data" / "posetrack18_sample"
SAMPLES = [("--data", str(COCO / "test_coco.json"), "--images", str(COCO)),
           ("--data", str(POSETRACK / "annotations" / "test_posetrack18_val.json"), "--images", str(POSETRACK))]
pytestmark = pytest.mark.skipif(not (NANO.is_file() and COCO.is_dir() and POSETRACK.is_dir()),
                                reason="../shared YOLOX-Nano or data samples absent")
THRESHOLDS = CATALOGUE["yolox-nano"].tracker_thresholds


def run(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=600)


def labelled_people():
    """(image path, labelled people's boxes) of both samples."""
    images = load_boxes(COCO / "test_coco.json") + load_boxes(POSETRACK / "annotations" / "test_posetrack18_val.json",
                                                                POSETRACK)
    return [(path, boxes[~ignored]) for path, boxes, ignored, _ in images]


def test_yolox_nano_finds_the_labelled_people_at_its_thresholds():
    detector = load_detector(f"yolox:{NANO}", score_thresh=THRESHOLDS["high_score"])
    found = people = 0
    for path, boxes in labelled_people():
        detections = detector.detect(cv2.imread(str(path)))
        people += len(boxes)
        if len(detections):
            found += int((box_iou(boxes, detections).max(axis=1) >= 0.5).sum())
    assert people == 26
    assert found >= 21          # recall 0.81 at high_score, IoU 0.5 (21 of 26 when measured)


def test_the_catalogue_thresholds_of_yolox_nano_are_what_calibrate_gives_on_real_people():
    args = [arg for sample in SAMPLES for arg in sample]
    result = run("engines", "calibrate", "--rule", "share", "--det", f"yolox:{NANO}", *args, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["people"] == 26 and report["thresholds"] == THRESHOLDS


@pytest.mark.slow
def test_the_tracker_tracks_the_labelled_people_of_the_posetrack_frames(tmp_path):
    """The three labelled PoseTrack18 frames and five frames of another sequence, each a source, with
    the real detector and its thresholds: valid PoseTrack files, the labelled people under a
    track's box, and the people of the five frames keeping their ids."""
    settings = tmp_path / "nano.yaml"
    settings.write_text("".join(f"{name}: {value}\n" for name, value in THRESHOLDS.items()))
    sequences = sorted((POSETRACK / "images" / "val").iterdir())
    video = POSETRACK / "videos" / "000001_mpiinew_test"
    sources = [arg for folder in [*sequences, video] for arg in ("--source", str(folder))]
    result = run("tracker", *sources, "--det", f"yolox:{NANO}", "--pose", "lite_w16_160x128",
                 "--tracker", str(settings), "--out", str(tmp_path / "out"), "--no-save")
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "out" / "exp1"
    tracked = labelled = 0
    for folder in sequences:
        truth = load_sequence(POSETRACK / "annotations" / "val" / f"{folder.name}.json").frames[0]
        frames = load_sequence(run_dir / f"{folder.name}.json").frames
        assert len(frames) == 1
        if frames[0].num_people:
            tracked += int((box_iou(truth.boxes, frames[0].boxes).max(axis=1) >= 0.5).sum())
        labelled += truth.num_people
    # 8 of 14 when measured: a first frame starts tracks at new_track_score only, and five of the
    # crowd frame's eleven people score under it with YOLOX-Nano (one more is boxed at IoU 0.46)
    assert labelled == 14 and tracked >= 8
    frames = load_sequence(run_dir / f"{video.name}.json").frames
    assert len(frames) == 5
    ids = [set(frame.track_ids.tolist()) for frame in frames]
    assert len(ids[0]) >= 2 and all(later == ids[0] for later in ids)   # three players, two apart

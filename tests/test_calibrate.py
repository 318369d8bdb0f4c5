"""Detector score thresholds for the tracker: `python -m engines calibrate` on real synthetic images
with the bundled detector, and the tracker taking them from the detector it runs with."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from engines.models.catalogue import CATALOGUE, names
from engines.tools.calibrate import LOW_PRECISION, NEW_PRECISION, match_scores, recall_by_height
from tracker.app import build_parser, tracker_config
from tracker.pipeline import new_tracker
from tracker.sources import DEMO_CLIP
from tracker.tracking import TrackerConfig


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_matching_is_greedy_by_score_and_ignored_people_count_neither_way():
    people = np.array([[0, 0, 10, 20], [100, 0, 110, 20], [200, 0, 210, 20]], np.float32)
    ignored = np.array([False, False, True])
    detections = np.array([[0, 0, 10, 19, 0.4],      # person 0, but after the better box below
                           [0, 1, 10, 20, 0.9],      # person 0
                           [101, 0, 111, 20, 0.3],   # person 1
                           [200, 0, 210, 20, 0.8],   # the ignored person: neither true nor false
                           [50, 50, 60, 70, 0.7]],   # nobody
                          np.float32)
    true, false, matched = match_scores(detections, people, ignored)
    assert sorted(true.tolist()) == pytest.approx([0.3, 0.9])
    assert sorted(false.tolist()) == pytest.approx([0.4, 0.7])
    assert matched.tolist() == pytest.approx([0.9, 0.3, 0.8])


def test_recall_by_height_bins_people_at_80_and_160_px():
    heights = np.array([50, 79.9, 80, 120, 159, 160, 400])
    matched = np.array([0.9, 0.0, 0.5, 0.2, 0.6, 0.0, 0.7], np.float32)
    rows = recall_by_height(heights, matched, 0.5)
    assert [(r["height"], r["people"], r["recall"]) for r in rows] == [
        ("< 80 px", 2, 0.5), ("80-160 px", 3, pytest.approx(2 / 3, abs=1e-3)), (">= 160 px", 2, 0.5)]
    assert recall_by_height(np.array([200.0]), np.array([1.0]), 0.5)[0]["recall"] is None


@pytest.mark.slow
def test_calibrate_on_synthetic_images_gives_thresholds_ordered_as_the_tracker_needs(tmp_path):
    made = run("trainer", "synth", "images", "--count", "40", "--out", str(tmp_path / "set"), "--seed", "23",
               "--people", "2-8")
    assert made.returncode == 0, made.stderr
    result = run("engines", "calibrate", "--det", "centernet", "--data", str(tmp_path / "set/annotations.json"),
                 "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    t = report["thresholds"]
    assert 0 < t["low_score"] <= t["high_score"] <= t["new_track_score"] < 1
    TrackerConfig(**t)  # accepted as tracker settings
    figures = {row["setting"]: row for row in report["figures"]}
    # a higher threshold keeps fewer people and is more often right
    assert figures["low_score"]["recall"] >= figures["high_score"]["recall"] >= figures["new_track_score"]["recall"]
    assert figures["new_track_score"]["precision"] >= NEW_PRECISION
    assert figures["low_score"]["precision"] >= LOW_PRECISION
    assert 0 < report["detections_true"] <= report["people"]
    # every person falls in one height bin, and the bins' recalls average to high_score's
    bins = report["recall_by_height"]
    assert sum(row["people"] for row in bins) == report["people"]
    pooled = sum(row["people"] * row["recall"] for row in bins if row["recall"] is not None) / report["people"]
    assert pooled == pytest.approx(figures["high_score"]["recall"], abs=2e-3)
    text = run("engines", "calibrate", "--data", str(tmp_path / "set/annotations.json"))
    assert text.returncode == 0 and "high_score" in text.stdout and "precision" in text.stdout
    assert "by person height: < 80 px" in text.stdout


@pytest.mark.slow
def test_the_bundled_detectors_thresholds_are_what_the_command_gives_on_its_held_out_set(tmp_path):
    # the catalogue's comment names the command and the set: 300 held-out frames, seed 2
    made = run("trainer", "synth", "images", "--count", "300", "--out", str(tmp_path / "val"), "--seed", "2")
    assert made.returncode == 0, made.stderr
    result = run("engines", "calibrate", "--det", "centernet", "--data", str(tmp_path / "val/annotations.json"),
                 "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["thresholds"] == CATALOGUE["centernet"].tracker_thresholds


@pytest.mark.parametrize("content", [None, "not json", '{"images": [], "annotations": []}'])
def test_calibrate_refuses_bad_input_with_one_line(tmp_path, content):
    path = tmp_path / "annotations.json"
    if content is not None:
        path.write_text(content)
    result = run("engines", "calibrate", "--data", str(path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and str(path) in result.stderr


def test_the_tracker_takes_the_calibrated_thresholds_of_the_bundled_detector():
    calibrated = CATALOGUE["centernet"].tracker_thresholds
    assert set(calibrated) == {"low_score", "high_score", "new_track_score"}
    config = tracker_config(build_parser().parse_args([]), ["demo"])  # the demo clip runs centernet
    assert {name: getattr(config, name) for name in calibrated} == calibrated
    assert config.min_hits == TrackerConfig().min_hits  # what calibration does not set keeps its default
    assert new_tracker("posetrack18", 25.0, config).config.high_score == calibrated["high_score"]


def test_a_tracker_file_overrides_the_calibrated_thresholds(tmp_path):
    path = tmp_path / "tracker.yaml"
    path.write_text("high_score: 0.45\n")
    config = tracker_config(build_parser().parse_args(["--tracker", str(path)]), ["demo"])
    assert config.high_score == 0.45
    assert config.new_track_score == CATALOGUE["centernet"].new_track_score  # the file left it out


def test_real_world_detectors_take_their_thresholds_or_the_defaults():
    for name in names("detector"):
        if CATALOGUE[name].kind == "yolox":
            expected = TrackerConfig(**CATALOGUE[name].tracker_thresholds)
            assert tracker_config(build_parser().parse_args(["--det", name]), ["clip.mp4"]) == expected
    assert CATALOGUE["yolox-nano"].tracker_thresholds                # calibrated on real people
    assert not CATALOGUE["yolox-s"].tracker_thresholds               # no weights here to calibrate on
    # a checkpoint or ONNX file has no catalogue entry: defaults too
    assert tracker_config(build_parser().parse_args(["--det", "yolox:x.onnx"]), ["clip.mp4"]) == TrackerConfig()


def test_the_detector_keeps_boxes_down_to_the_trackers_low_score(tmp_path):
    from tracker.app import load_models

    detector, _ = load_models(build_parser().parse_args([]), ["demo"])
    assert detector.score_thresh == CATALOGUE["centernet"].low_score
    path = tmp_path / "tracker.yaml"
    path.write_text("low_score: 0.1\n")
    detector, _ = load_models(build_parser().parse_args(["--tracker", str(path)]), ["demo"])
    video = cv2.VideoCapture(str(DEMO_CLIP))
    video.set(cv2.CAP_PROP_POS_FRAMES, 134)   # a frame with weak boxes (a legs box at 0.244)
    ok, frame = video.read()
    assert ok
    scores = detector.detect(frame)[:, 4]
    assert scores.min() >= 0.1 and (scores < 0.25).any()   # under centernet's own floor of 0.25

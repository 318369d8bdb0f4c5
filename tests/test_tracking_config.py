"""Tracker settings: the shipped YAML, loading a user's file, one-line refusals, new_tracker."""

import subprocess
import sys
from dataclasses import asdict, fields
from typing import get_type_hints

import numpy as np
import pytest
import yaml

from engines.errors import UserError
from engines.models.catalogue import CATALOGUE
from tracker.app import build_parser, plan_run
from tracker.pipeline import new_tracker
from tracker.tracking import DEFAULT_TRACKER_YAML, PoseTracker, TrackerConfig, load_tracker_config
from tracker.tracking.config import UNCALIBRATED_SCORES
from synthetic_people import COCO_TEMPLATE, boxes_from_keypoints


def write(tmp_path, text, name="tracker.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


CENTERNET = {"low_score": 0.243, "high_score": 0.302, "new_track_score": 0.338}   # a detector's calibration
NUMERIC = [name for name, hint in get_type_hints(TrackerConfig).items() if hint in (int, float, float | None)]


def test_shipped_yaml_lists_every_setting_and_is_the_default():
    data = yaml.safe_load(DEFAULT_TRACKER_YAML.read_text())
    assert list(data) == [f.name for f in fields(TrackerConfig)]
    assert load_tracker_config(DEFAULT_TRACKER_YAML) == TrackerConfig() == load_tracker_config(None)


def test_an_unchanged_copy_of_the_shipped_yaml_keeps_the_detectors_thresholds(tmp_path):
    copy = write(tmp_path, DEFAULT_TRACKER_YAML.read_text())
    config = load_tracker_config(copy, base=CENTERNET)
    assert config == load_tracker_config(None, base=CENTERNET)
    assert {name: getattr(config, name) for name in CENTERNET} == CENTERNET
    # as the app runs it: the demo clip's detector, centernet, has calibrated thresholds
    with_copy = plan_run(build_parser().parse_args(["--tracker", str(copy)]))
    assert with_copy == plan_run(build_parser().parse_args([]))
    assert with_copy.tracker.low_score == CATALOGUE[with_copy.detector].low_score != UNCALIBRATED_SCORES["low_score"]
    # without a calibration the generic thresholds apply
    assert {name: getattr(TrackerConfig(), name) for name in CENTERNET} == UNCALIBRATED_SCORES


def test_a_file_sets_only_what_it_says(tmp_path):
    said = load_tracker_config(write(tmp_path, "high_score: 0.45\nlow_score: null\n"), base=CENTERNET)
    assert (said.high_score, said.low_score, said.new_track_score) == (0.45, 0.243, 0.338)
    assert load_tracker_config(write(tmp_path, "high_score: 0.45\n"), base={}).low_score == UNCALIBRATED_SCORES["low_score"]


def test_a_file_sets_some_keys_and_the_rest_keep_their_defaults(tmp_path):
    path = write(tmp_path, "min_hits: 1\nhigh_score: 1   # an int where a float is due\nflip_robust: false\n"
                           "frame_period: 0.04\n")
    config = load_tracker_config(path)
    assert (config.min_hits, config.high_score, config.flip_robust, config.frame_period) == (1, 1.0, False, 0.04)
    assert isinstance(config.high_score, float)
    untouched = {k: v for k, v in asdict(config).items() if k not in ("min_hits", "high_score", "flip_robust",
                                                                       "frame_period")}
    assert untouched == {k: v for k, v in asdict(TrackerConfig()).items() if k in untouched}
    assert load_tracker_config(write(tmp_path, "", "empty.yaml")) == TrackerConfig()


@pytest.mark.parametrize("text, message", [
    ("min_hit: 3\n", "unknown tracker setting 'min_hit'; known: schema, high_score"),
    ("high_score: high\n", "high_score must be a number or null, got 'high'"),
    ("box_noise: 1e-2\n", "YAML reads 1e-2 as text"),
    ("min_hits: 2.5\n", "min_hits must be a whole number, got 2.5"),
    ("lost_buffer: true\n", "lost_buffer must be a whole number, got True"),
    ("flip_robust: 1\n", "flip_robust must be true or false, got 1"),
    ("min_hits: null\n", "min_hits must be a whole number, got None"),   # null: only where the run has a value
    ("high_score: 1.5\n", "high_score must be in [0, 1], got 1.5"),
    ("min_hits: 0\n", "min_hits must be 1 or more, got 0"),
    ("box_noise: 0\n", "box_noise must be more than 0, got 0.0"),
    ("frame_period: -0.1\n", "frame_period must be more than 0, got -0.1"),
    ("low_score: 0.6\nhigh_score: 0.5\n", "low_score (0.6) must not exceed high_score (0.5)"),
    ("schema: coco18\n", "schema must be one of coco17, posetrack18, mpii16, got 'coco18'"),
    ("- min_hits\n- 3\n", "expected KEY: VALUE lines of tracker settings, got a list"),
    ("min_hits: [3\n", "not valid YAML at line 2"),
])
def test_bad_files_are_refused_in_one_line_naming_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as error:
        load_tracker_config(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
@pytest.mark.parametrize("key", NUMERIC)
def test_every_numeric_setting_must_be_finite(tmp_path, key, value):
    path = write(tmp_path, f"{key}: {value}\n")
    with pytest.raises(UserError) as error:
        load_tracker_config(path)
    message = str(error.value)
    assert message.startswith(f"{path}: tracker setting {key} must be ") and "\n" not in message


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(UserError, match="cannot read tracker settings .*nope.yaml: No such file"):
        load_tracker_config(tmp_path / "nope.yaml")


def test_python_callers_get_the_same_checks():
    with pytest.raises(UserError, match="oks_weight must be in"):
        TrackerConfig(oks_weight=-0.1)
    assert TrackerConfig(min_hits=np.int64(2), high_score=np.float32(0.5)).min_hits == 2


@pytest.mark.parametrize("text, problem", [("lost_buffer: -1\n", "lost_buffer must be 0 or more, got -1"),
                                           ("low_score: .nan\n", "low_score must be a finite number, got nan")])
def test_cli_refuses_a_bad_tracker_file_in_one_line_before_loading_models(tmp_path, text, problem):
    path = write(tmp_path, text)
    run = subprocess.run([sys.executable, "-m", "tracker", "--tracker", str(path), "--out", str(tmp_path / "runs")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"tracker: error: {path}: tracker setting {problem}"]
    assert not (tmp_path / "runs").exists()


def test_new_tracker_takes_the_schema_from_the_model_and_the_period_from_the_source():
    assert new_tracker("coco17", 25.0)._frame_period == pytest.approx(0.04)
    assert new_tracker("coco17", 25.0, TrackerConfig(frame_period=0.1))._frame_period == 0.1
    assert new_tracker("posetrack18", 30.0).config.schema == "posetrack18"
    with pytest.raises(UserError, match="schema 'mpii16' does not match the pose model's 'coco17'"):
        new_tracker("coco17", 30.0, TrackerConfig(schema="mpii16"))


def test_settings_from_a_file_change_what_the_tracker_does(tmp_path):
    xy = COCO_TEMPLATE * 200 + [300, 300]
    kpts = np.concatenate([xy, np.full((17, 1), 0.9)], axis=1)[None].astype(np.float32)
    boxes = boxes_from_keypoints(kpts, np.array([0.9]))
    default, eager = PoseTracker(), new_tracker("coco17", 30, load_tracker_config(write(tmp_path, "min_hits: 1\n")))
    for tracker in (default, eager):   # past the first frame, whose people are confirmed at once
        tracker.update(np.zeros((0, 5)), np.zeros((0, 17, 3)), -1 / 30)
    assert len(default.update(boxes, kpts, 0.0)) == 0          # tentative: not reported yet
    assert eager.update(boxes, kpts, 0.0).ids.tolist() == [1]  # confirmed at its first hit

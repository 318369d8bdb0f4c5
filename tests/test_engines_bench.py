"""`python -m engines bench`: the per-frame cost of detector + pose, catalogue names as presets,
and the reference workload every figure is divided by."""

import json

import pytest

from engines.errors import run_cli
from engines.tools.bench import main as bench_main


def test_frame_cost_runs_the_detector_once_per_interval_between_pose_frames(capsys, monkeypatch):
    import engines.detectors
    from engines.pose.estimator import PoseEstimator

    calls = []
    real_load, real_estimate = engines.detectors.load_detector, PoseEstimator.estimate

    def load_counting(name, **kwargs):
        detector = real_load(name, **kwargs)
        detect = detector.detect
        detector.detect = lambda frame: calls.append("det") or detect(frame)
        return detector

    def estimate_counting(self, frame, boxes):
        calls.append(len(boxes))
        return real_estimate(self, frame, boxes)

    monkeypatch.setattr(engines.detectors, "load_detector", load_counting)
    monkeypatch.setattr(PoseEstimator, "estimate", estimate_counting)
    argv = ["--detector", "centernet", "--preset", "lite_w16_160x128", "--backend", "onnxruntime",
            "--people", "1,3", "--det-interval", "1,3", "--frame", "320x240", "--repeats", "2",
            "--warmup", "0", "--json"]
    assert bench_main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    rows, reference = report["rows"], report["reference"]["median_ms"]
    assert [(r["people"], r["det_interval"]) for r in rows] == [(1, 1), (1, 3), (3, 1), (3, 3)]
    for row in rows:
        assert row["x_ref"] == pytest.approx(row["median_ms"] / reference, rel=0.01)
        assert row["frames_per_s"] == pytest.approx(1e3 / row["median_ms"], rel=0.01)
    # two timed runs per row, each the detector then `interval` pose frames
    runs = lambda people, interval: (["det"] + [people] * interval) * 2
    assert calls == runs(1, 1) + runs(1, 3) + runs(3, 1) + runs(3, 3)


def test_catalogue_names_stand_for_their_presets_and_typos_fail_first(capsys):
    argv = ["--preset", "lite_w16_160x128", "--backend", "torch", "--batch", "1", "--repeats", "1",
            "--warmup", "0"]
    assert bench_main(argv) == 0
    table = capsys.readouterr().out
    assert "lite_w16_160x128" in table and "x_ref" in table and "reference workload" in table
    assert run_cli(bench_main, ["--preset", "litehrnet30-coco,nosuch", "--batch", "1"]) == 2
    assert "unknown preset 'nosuch'" in capsys.readouterr().err


def test_pose_rows_say_how_many_sessions_split_a_batch(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HRNET_TRACKER_CACHE", str(tmp_path))  # the ONNX export lands here
    sessions = {}
    for workers in (1, 2):
        argv = ["--preset", "lite_w16_160x128", "--backend", "onnxruntime,torch", "--batch", "2",
                "--repeats", "1", "--warmup", "0", "--workers", str(workers), "--json"]
        assert bench_main(argv) == 0
        rows = json.loads(capsys.readouterr().out)["rows"]
        sessions[workers] = [(r["backend"], r["sessions"]) for r in rows]
    assert sessions == {1: [("onnxruntime", 1), ("torch", 1)], 2: [("onnxruntime", 2), ("torch", 1)]}

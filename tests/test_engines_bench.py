"""`python -m engines bench`: the per-frame cost of detector + pose, catalogue names as presets,
and the reference workload every figure is divided by."""

import json

import pytest

from engines.errors import run_cli
from engines.tools.bench import main as bench_main


def test_frame_cost_is_detector_over_interval_plus_pose(capsys):
    argv = ["--detector", "centernet", "--preset", "lite_w16_160x128", "--backend", "onnxruntime",
            "--people", "1,3", "--det-interval", "1,3", "--frame", "320x240", "--repeats", "2",
            "--warmup", "0", "--json"]
    assert bench_main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    rows, reference = report["rows"], report["reference"]["median_ms"]
    assert [(r["people"], r["det_interval"]) for r in rows] == [(1, 1), (1, 3), (3, 1), (3, 3)]
    for row in rows:
        assert row["median_ms"] == pytest.approx(row["det_ms"] / row["det_interval"] + row["pose_ms"], abs=0.02)
        assert row["x_ref"] == pytest.approx(row["median_ms"] / reference, rel=0.01)
    assert rows[0]["det_ms"] == rows[1]["det_ms"] and rows[1]["median_ms"] < rows[0]["median_ms"]


def test_catalogue_names_stand_for_their_presets_and_typos_fail_first(capsys):
    argv = ["--preset", "lite_w16_160x128", "--backend", "torch", "--batch", "1", "--repeats", "1",
            "--warmup", "0"]
    assert bench_main(argv) == 0
    table = capsys.readouterr().out
    assert "lite_w16_160x128" in table and "x_ref" in table and "reference workload" in table
    assert run_cli(bench_main, ["--preset", "litehrnet30-coco,nosuch", "--batch", "1"]) == 2
    assert "unknown preset 'nosuch'" in capsys.readouterr().err

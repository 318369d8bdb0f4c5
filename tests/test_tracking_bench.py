"""`python -m tracker bench --stage track`: runs, reports medians per crowd size, rejects bad stages."""

import json

import pytest

from engines.errors import UserError
from tracker.bench import main


def test_track_stage_reports_medians(capsys):
    assert main(["--stage", "track", "--people", "2", "6", "--frames", "30", "--warmup", "5", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["people"] for r in rows] == [2, 6]
    # the demo clip's people, copied to the crowd size, are tracked (some enter and leave the clip)
    assert 0 < rows[0]["tracked"] <= 2 and 2 < rows[1]["tracked"] <= 6
    assert all(r["frames"] == 25 and 0 < r["median_ms"] <= r["p90_ms"] for r in rows)
    # the reference workload is timed once per run and every median is given as a multiple of it
    assert len({r["reference_ms"] for r in rows}) == 1 and rows[0]["reference_ms"] > 0
    assert all(r["x_ref"] == pytest.approx(r["median_ms"] / r["reference_ms"], abs=1e-4) for r in rows)


def test_bad_arguments_are_user_errors():
    with pytest.raises(UserError, match="unknown bench stage"):
        main(["--stage", "nope"])
    with pytest.raises(UserError, match="must exceed"):
        main(["--stage", "track", "--frames", "10", "--warmup", "10"])


def test_e2e_stage_times_every_stage_on_a_clip(capsys, lite_weights, short_clip):
    argv = ["--stage", "e2e", "--source", str(short_clip), "--pose", str(lite_weights), "--det", "hog",
            "--frames", "0", "--warmup", "1", "--json"]
    assert main(argv) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["frames"] == 6 and row["fps"] > 0 and row["decode_ms"] > 0
    assert all(row[f"{stage}_ms"] > 0 for stage in ("detect", "pose", "track", "render"))
    assert row["median_ms"] > 0 and row["p90_ms"] > 0


def test_live_stage_plays_the_clip_like_a_camera(capsys, lite_weights, short_clip):
    argv = ["--stage", "live", "--source", str(short_clip), "--pose", str(lite_weights), "--det", "hog",
            "--seconds", "600", "--frames", "10", "--warmup", "2", "--json"]
    assert main(argv) == 0
    [row] = json.loads(capsys.readouterr().out)
    # the 6-frame clip loops like a camera: more frames than it holds, each with a measured latency
    assert row["frames"] >= 10 and 0 < row["median_ms"] <= row["p90_ms"]

"""`python -m tracker bench --stage track`: runs, reports medians per crowd size, rejects bad stages."""

import json

import pytest

from engines.errors import UserError
from tracker.bench import main


def test_track_stage_reports_medians(capsys):
    assert main(["--stage", "track", "--people", "2", "6", "--frames", "30", "--warmup", "5", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["people"] for r in rows] == [2, 6]
    assert all(r["frames"] == 25 and 0 < r["median_ms"] <= r["p90_ms"] for r in rows)


def test_bad_arguments_are_user_errors():
    with pytest.raises(UserError, match="unknown bench stage"):
        main(["--stage", "nope"])
    with pytest.raises(UserError, match="must exceed"):
        main(["--stage", "track", "--frames", "10", "--warmup", "10"])

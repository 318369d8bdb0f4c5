"""`python -m trainer bundle`: a checkpoint becomes a half-size fp16 file that engines loads."""

import numpy as np
import pytest
import torch

from engines.errors import UserError
from engines.pose.estimator import PoseEstimator
from engines.models.presets import build_network
from engines.models.weights import bundled_weights
from trainer.bundle import main


def test_bundle_halves_the_file_and_keeps_the_heatmaps(tmp_path, capsys):
    model = build_network("lite_w16_160x128")
    checkpoint = tmp_path / "checkpoint.pth"   # the trainer's form: a dict around a DDP state_dict
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, checkpoint)
    out = tmp_path / "assets" / "lite.pth"
    assert main([str(checkpoint), "--out", str(out)]) == 0
    assert "fp16" in capsys.readouterr().out
    assert out.stat().st_size < 0.6 * checkpoint.stat().st_size
    crops = np.random.default_rng(0).normal(size=(2, 3, 160, 128)).astype(np.float32)
    full = PoseEstimator("lite_w16_160x128", model.state_dict()).heatmaps(crops)
    half = PoseEstimator("lite_w16_160x128", out).heatmaps(crops)
    assert np.abs(full - half).max() < 1e-2 * np.abs(full).max()


def test_bundle_of_a_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        main([str(tmp_path / "none.pth"), "--out", str(tmp_path / "x.pth")])
    assert not (tmp_path / "x.pth").exists()


def test_bundle_to_a_place_that_cannot_be_written_is_a_user_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot write"):
        main([str(bundled_weights("lite_w16_160x128")), "--out", str(blocker / "x.pth")])

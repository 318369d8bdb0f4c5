"""Lite-HRNet checkpoints as users download them (mmpose 0.x and 1.x forms) through the model
loading, the ONNX export command and the estimator."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.errors import UserError
from engines.models.presets import build_network
from engines.models.weights import WeightsError, load_weights
from engines.pose.loading import load_pose

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mmpose_checkpoints(tmp_path_factory):
    """Lite-HRNet-18 random weights saved as mmpose 0.x and 1.x publish them."""
    torch.manual_seed(0)
    state = build_network("litehrnet18_256x192").state_dict()
    folder = tmp_path_factory.mktemp("mmpose")
    old, new = folder / "litehrnet18_0x.pth", folder / "litehrnet18_1x.pth"
    torch.save({"meta": {"epoch": 210, "mmpose_version": "0.x"}, "state_dict": state}, old)
    torch.save({"meta": {"dataset_meta": {"dataset_name": "coco"}},
                "state_dict": {k.replace("keypoint_head.", "head."): v for k, v in state.items()}
                | {"data_preprocessor.mean": torch.zeros(3, 1, 1)}}, new)
    return state, old, new


def test_both_mmpose_forms_load_and_give_the_same_network(mmpose_checkpoints):
    state, old, new = mmpose_checkpoints
    for path in (old, new):
        model = load_weights(build_network("litehrnet18_256x192"), path)
        assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_the_preset_of_a_checkpoint_file_is_found_from_its_keys(mmpose_checkpoints):
    _, old, new = mmpose_checkpoints
    for path in (old, new):
        assert load_pose(path, backend="torch").preset.name == "litehrnet18_256x192"  # smallest input
    assert load_pose(new, "litehrnet18_384x288", backend="torch").preset.image_size == (288, 384)


def test_wrong_keys_or_shapes_are_named(mmpose_checkpoints, tmp_path):
    state, _, _ = mmpose_checkpoints
    with pytest.raises(WeightsError, match="wrongly shaped.*keypoint_head.final_layer.weight"):
        load_weights(build_network("litehrnet18_256x192"),
                     dict(state, **{"keypoint_head.final_layer.weight": torch.zeros(16, 40, 1, 1)}))
    with pytest.raises(WeightsError, match=r"809 missing: backbone\.stage0\.2\."):
        load_weights(build_network("litehrnet30_256x192"), state)     # an 18 file for a 30 network
    with pytest.raises(UserError, match="fit none of the presets"):
        torch.save({"state_dict": {k: v for k, v in state.items() if "stage2" not in k}}, tmp_path / "cut.pth")
        load_pose(tmp_path / "cut.pth")


@pytest.mark.slow
def test_export_command_takes_the_mmpose_file_and_matches_torch(mmpose_checkpoints, tmp_path):
    import onnxruntime as ort

    state, _, new = mmpose_checkpoints
    out = tmp_path / "litehrnet18.onnx"
    run = subprocess.run([sys.executable, "-m", "engines", "export", "--preset", "litehrnet18_256x192",
                          "--weights", str(new), "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "litehrnet18_256x192" in run.stdout
    images = np.random.default_rng(0).standard_normal((3, 3, 256, 192)).astype(np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": images})[0]
    model = build_network("litehrnet18_256x192")
    model.load_state_dict(state)
    with torch.inference_mode():
        expected = model.eval()(torch.from_numpy(images)).numpy()
    assert got.shape == (3, 17, 64, 48) and np.abs(got - expected).max() < 1e-4


@pytest.mark.slow
def test_estimator_on_onnxruntime_agrees_with_torch(mmpose_checkpoints):
    _, old, _ = mmpose_checkpoints
    crops = np.random.default_rng(1).standard_normal((2, 3, 256, 192)).astype(np.float32)
    by_torch = load_pose(old, backend="torch").heatmaps(crops)
    by_ort = load_pose(old).heatmaps(crops)                          # onnxruntime: the CPU default
    assert by_ort.shape == (2, 17, 64, 48) and np.abs(by_torch - by_ort).max() < 1e-4

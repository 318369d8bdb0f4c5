"""Weights loading from real checkpoint files in each supported layout, and clear failures."""

from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from engines.errors import UserError
from engines.models.hrnet import build_hrnet
from engines.models.weights import (WeightsError, bundled_weights, load_state_dict_file, load_weights,
                             normalize_state_dict)

FIXTURE = Path(__file__).parent / "fixtures" / "hrnet_tiny_ref.pt"


@pytest.fixture(scope="module")
def ref():
    return torch.load(FIXTURE, weights_only=True)


def fresh_model(ref):
    return build_hrnet(ref["MODEL_EXTRA"], ref["NUM_JOINTS"]).eval()


def assert_loaded_like_reference(model, ref, with_counters=True):
    loaded = model.state_dict()
    for key, value in ref["state_dict"].items():
        if with_counters or not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded[key], value), key
    with torch.no_grad():
        assert (model(ref["input"]) - ref["output"]).abs().max().item() <= 1e-4


def official_final_state(sd):
    return OrderedDict(sd)


def official_dataparallel_final_state(sd):
    return OrderedDict(("module." + k, v) for k, v in sd.items())


def official_checkpoint(sd):
    # train.py's checkpoint.pth: epoch, model name, DataParallel state_dict, best perf, optimizer
    optimizer = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(2)}},
                 "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}]}
    return {"epoch": 140, "model": "pose_hrnet", "perf": 0.744, "optimizer": optimizer,
            "state_dict": official_dataparallel_final_state(sd)}


def mmpose_0x(sd):
    renamed = {("keypoint_head." if k.startswith("final_layer.") else "backbone.") + k: v
               for k, v in sd.items()}
    return {"meta": {"epoch": 210, "mmcv_version": "1.3.8"}, "state_dict": renamed}


def mmpose_1x(sd):
    renamed = {("head." if k.startswith("final_layer.") else "backbone.") + k: v for k, v in sd.items()}
    return {"meta": {"epoch": 210}, "state_dict": renamed}


def without_bn_counters(sd):
    return OrderedDict((k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))


@pytest.mark.parametrize("layout", [official_final_state, official_dataparallel_final_state,
                                    official_checkpoint, mmpose_0x, mmpose_1x, without_bn_counters])
def test_checkpoint_layouts_load_from_real_files(ref, tmp_path, layout):
    path = tmp_path / f"{layout.__name__}.pth"
    torch.save(layout(ref["state_dict"]), path)
    model = load_weights(fresh_model(ref), path)
    assert_loaded_like_reference(model, ref, with_counters=layout is not without_bn_counters)


def test_state_dict_object_loads_too(ref):
    assert_loaded_like_reference(load_weights(fresh_model(ref), mmpose_0x(ref["state_dict"])), ref)


def test_normalized_keys_are_official(ref):
    assert list(normalize_state_dict(mmpose_0x(ref["state_dict"]))) == list(ref["state_dict"])


def test_mismatch_lists_missing_unexpected_and_wrongly_shaped_keys(ref):
    sd = OrderedDict(ref["state_dict"])
    for key in [k for k in sd if k.startswith("stage4.1.branches.3.")]:
        del sd[key]  # 14 keys (10 without BN counters) missing
    sd["extra_head.weight"] = torch.zeros(3)
    sd["final_layer.weight"] = torch.zeros(5, 4, 1, 1)
    with pytest.raises(WeightsError) as info:
        load_weights(fresh_model(ref), sd)
    message = str(info.value)
    assert "\n" not in message
    assert "10 missing: stage4.1.branches.3.0.conv1.weight" in message
    assert "(+5 more)" in message
    assert "1 unexpected: extra_head.weight" in message
    assert "final_layer.weight [5, 4, 1, 1] vs [17, 4, 1, 1]" in message
    assert "num_batches_tracked" not in message
    assert isinstance(info.value, UserError)


def test_other_architecture_is_refused_before_touching_the_model(ref):
    model = fresh_model(ref)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    other = build_hrnet(dict(ref["MODEL_EXTRA"], FINAL_CONV_KERNEL=3), 17).state_dict()
    with pytest.raises(WeightsError, match="wrongly shaped"):
        load_weights(model, other)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="weights file not found") as info:
        load_state_dict_file(tmp_path / "nope.pth")
    assert "\n" not in str(info.value)


def test_corrupt_and_truncated_files_are_user_errors(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint\x00\x01" * 20)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(FIXTURE.read_bytes()[:50_000])
    for path in (garbage, truncated):
        with pytest.raises(UserError, match="cannot read weights file") as info:
            load_state_dict_file(path)
        assert "\n" not in str(info.value)


def test_pickled_code_is_refused(tmp_path):
    # weights_only=True must refuse arbitrary objects instead of unpickling them
    path = tmp_path / "object.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "callback": Path("/tmp")}, path)
    with pytest.raises(UserError, match="cannot read weights file"):
        load_state_dict_file(path)


def test_non_tensor_entries_are_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save({"state_dict": {"conv1.weight": [1, 2, 3]}}, path)
    with pytest.raises(UserError, match="entry 'conv1.weight' is a list"):
        load_state_dict_file(path)


def test_unknown_bundled_weights_name():
    with pytest.raises(UserError, match="no bundled weights for 'nobody'"):
        bundled_weights("nobody")


@pytest.mark.parametrize("layout, rule", [(official_final_state, "hrnet"), (official_checkpoint, "hrnet"),
                                          (mmpose_0x, "mmpose"), (mmpose_1x, "mmpose")])
def test_a_checkpoint_file_decodes_by_the_rule_of_the_code_that_wrote_it(tmp_path, layout, rule):
    from engines.models.presets import build_network
    from engines.pose.loading import load_pose

    path = tmp_path / "weights.pth"
    torch.save(layout(build_network("lite_w16_160x128").state_dict()), path)
    estimator = load_pose(path, decode="standard", backend="torch")
    assert estimator.preset.name == "lite_w16_160x128"
    assert estimator.processing.spec.rule == rule
    assert load_pose("lite_w16_160x128", backend="torch").processing.spec.rule == "hrnet"   # bundled: this project's trainer

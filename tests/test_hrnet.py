"""HRNet against the official implementation: strict load + forward of a tiny official model,
official W32/W48 state_dict keys and shapes, presets.

Fixtures: tests/fixtures/hrnet_* are copies of ../shared/fixtures/hrnet_reference/ (outputs of
the official leoxiaobin/deep-high-resolution-net.pytorch code; README there)."""

import json
from pathlib import Path

import pytest
import torch

from engines.tools.bench import count_macs
from engines.errors import UserError
from engines.models.hrnet import build_hrnet
from engines.models.presets import build_network
from engines.models.presets import PRESETS, Preset, get_preset, official_extra

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def tiny_ref():
    return torch.load(FIXTURES / "hrnet_tiny_ref.pt", weights_only=True)


def test_tiny_official_model_loads_strictly_and_matches_its_output(tiny_ref):
    model = build_hrnet(tiny_ref["MODEL_EXTRA"], tiny_ref["NUM_JOINTS"])
    model.load_state_dict(tiny_ref["state_dict"], strict=True)
    assert list(model.state_dict()) == list(tiny_ref["state_dict"])  # same order, too
    with torch.no_grad():
        out = model.eval()(tiny_ref["input"])
    assert out.shape == tiny_ref["output"].shape
    assert (out - tiny_ref["output"]).abs().max().item() <= 1e-4


@pytest.mark.parametrize("preset,keys_file", [("w32_256x192", "hrnet_w32_keys.json"),
                                              ("w48_384x288", "hrnet_w48_keys.json")])
def test_official_presets_have_official_keys_and_shapes(preset, keys_file):
    ref = json.loads((FIXTURES / keys_file).read_text())
    with torch.device("meta"):  # shapes without allocating 250 MB of weights
        model = build_network(preset)
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == ref["keys"]
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]
    p = get_preset(preset)
    assert list(p.image_size) == ref["image_size_wh"] and list(p.heatmap_size) == ref["heatmap_size_wh"]


def test_lite_preset_is_small_and_outputs_heatmap_size():
    preset = get_preset("lite_w16_160x128")
    model = build_network(preset).eval()
    w, h = preset.image_size
    with torch.no_grad():
        out = model(torch.zeros(2, 3, h, w))
    assert out.shape == (2, preset.num_joints, preset.heatmap_size[1], preset.heatmap_size[0])
    assert count_macs(model, preset.image_size) < 0.5e9
    # the optional STEM_CHANNELS / STAGE1 keys shrink the stem and stage 1
    assert model.conv1.weight.shape[0] == 32 and len(model.layer1) == 1


def test_mac_count_matches_hand_count_for_one_conv():
    conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
    # 8 output channels * 16x16 output pixels * 3*3*3 weights each
    assert count_macs(torch.nn.Sequential(conv), (32, 32)) == 8 * 16 * 16 * 27


def test_official_extra_gives_official_stem_and_layer1():
    model = build_hrnet(official_extra(32), 17)
    assert model.conv1.weight.shape == (64, 3, 3, 3)
    assert len(model.layer1) == 4 and model.layer1[0].conv3.weight.shape[0] == 256
    assert model.stage4[-1].fuse_layers is not None and len(model.stage4[-1].fuse_layers) == 1
    assert len(model.stage4[0].fuse_layers) == 4


def test_final_conv_kernel_3_keeps_heatmap_size(tiny_ref):
    extra = dict(tiny_ref["MODEL_EXTRA"], FINAL_CONV_KERNEL=3)
    with torch.no_grad():
        out = build_hrnet(extra, 5).eval()(torch.zeros(1, 3, 64, 32))
    assert out.shape == (1, 5, 16, 8)


@pytest.mark.parametrize("change,message", [
    (lambda e: e.pop("STAGE3"), "lacks STAGE3"),
    (lambda e: e["STAGE2"].pop("NUM_BLOCKS"), "STAGE2 lacks NUM_BLOCKS"),
    (lambda e: e["STAGE2"].update(NUM_BRANCHES=3), "NUM_BRANCHES 3"),
    (lambda e: e["STAGE4"].update(FUSE_METHOD="CAT"), "only SUM"),
    (lambda e: e["STAGE3"].update(BLOCK="FANCY"), "BASIC or BOTTLENECK"),
    (lambda e: e.update(FINAL_CONV_KERNEL=5), "FINAL_CONV_KERNEL"),
])
def test_bad_config_is_a_user_error(change, message):
    extra = official_extra(32)
    change(extra)
    with pytest.raises(UserError, match=message):
        build_hrnet(extra, 17)


def test_unknown_preset_lists_names():
    with pytest.raises(UserError, match="w32_256x192"):
        get_preset("w33")


def test_a_preset_at_another_size_is_its_network_at_that_input():
    resized = get_preset("lite_w16_256x192")     # what the trainer names a MODEL.IMAGE_SIZE override
    base = PRESETS["lite_w16_160x128"]
    assert (resized.image_size, resized.heatmap_size) == ((192, 256), (48, 64))
    assert (resized.extra, resized.sigma, resized.network) == (base.extra, base.sigma, base.network)
    net = build_network(resized).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 256, 192)).shape == (1, 17, 64, 48)
    with pytest.raises(UserError, match="multiples of 32"):
        get_preset("lite_w16_250x192")
    with pytest.raises(UserError, match="HEIGHTxWIDTH"):
        get_preset("nosuch_256x192")


def test_preset_rejects_sizes_the_network_cannot_take():
    with pytest.raises(UserError, match="multiples of 32"):
        Preset("odd", official_extra(32), (100, 128), (25, 32))
    with pytest.raises(UserError, match="image size / 4"):
        Preset("odd", official_extra(32), (96, 128), (48, 64))


def test_every_preset_names_a_known_schema_with_matching_joints():
    from engines.pose.schemas import get_schema

    for preset in PRESETS.values():
        assert get_schema(preset.schema).num_joints == preset.num_joints

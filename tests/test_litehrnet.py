"""Lite-HRNet-18/-30 against the official implementation (HRNet/Lite-HRNet @ 7b9049d, equal to
mmpose's): checkpoint keys and shapes, outputs on seeded weights, mmpose checkpoint forms, ONNX.

Fixtures (from ../shared/fixtures/litehrnet_reference/, README there):
- litehrnet{18,30}_keys.json: copies; `[key, shape]` of the official model in state_dict order.
- litehrnet{18,30}_golden.pt: the official code's eval-mode outputs on the weights that
  `seeded_weights` regenerates from the key list (sha256 of those weights stored) and the input
  `randn(2,3,256,192)` of seed 1: `output_fp32` (both samples) and `output_fp64_sample0`.
"""

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.errors import UserError
from engines.models.litehrnet import build_litehrnet
from engines.models.weights import load_weights, normalize_state_dict
from engines.tools.bench import count_macs

FIXTURES = Path(__file__).parent / "fixtures"
VARIANTS = ("18", "30")
FP32_ATOL = {"18": 1e-5, "30": 1e-4}
# conv MACs at 256x192 counting each conv once (reference README): the official code runs
# fuse_layers[i][0] twice on the same input, the closed-form fuse once
CONV_MACS = {"18": 198_626_688, "30": 309_451_488}


def key_list(variant: str) -> dict:
    return json.loads((FIXTURES / f"litehrnet{variant}_keys.json").read_text())


def seeded_weights(keys: list) -> dict[str, torch.Tensor]:
    """The reference README's recipe: one generator (seed 0), one draw per key in key order."""
    g = torch.Generator().manual_seed(0)
    names = {k for k, _ in keys}
    state = {}
    for key, shape in keys:
        prefix, leaf = key.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            state[key] = torch.tensor(0, dtype=torch.int64)
        elif leaf == "running_mean":
            state[key] = torch.randn(shape, generator=g) * 0.1
        elif leaf == "running_var":
            state[key] = torch.rand(shape, generator=g) * 1.5 + 0.5
        elif f"{prefix}.running_mean" in names:  # BatchNorm affine
            state[key] = (torch.rand(shape, generator=g) + 0.5 if leaf == "weight"
                          else torch.randn(shape, generator=g) * 0.1)
        elif len(shape) == 4:  # conv weight, gain 0.5
            state[key] = torch.randn(shape, generator=g) * (0.5 / np.prod(shape[1:]) ** 0.5)
        else:  # conv bias
            state[key] = torch.randn(shape, generator=g) * 0.1
    return state


def sha256(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module", params=VARIANTS)
def golden(request):
    """(variant, seeded eval model, golden data, input)."""
    variant = request.param
    ref = torch.load(FIXTURES / f"litehrnet{variant}_golden.pt", weights_only=True)
    weights = seeded_weights(key_list(variant)["keys"])
    assert sha256(weights.values()) == ref["state_dict_sha256"]
    model = build_litehrnet(variant)
    model.load_state_dict(weights, strict=True)
    image = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(1))
    assert sha256([image]) == ref["input_sha256"]
    return variant, model.eval(), ref, image


@pytest.mark.parametrize("variant", VARIANTS)
def test_keys_shapes_and_parameter_counts_equal_the_official_checkpoint(variant):
    ref = key_list(variant)
    with torch.device("meta"):
        model = build_litehrnet(variant)
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == ref["keys"]
    count = lambda module: sum(p.numel() for p in module.parameters())
    assert count(model) == ref["num_params"]
    assert count(model.backbone) == ref["num_params_backbone"]
    assert count(model.keypoint_head) == ref["num_params_head"]


def test_float64_output_equals_official(golden):
    _, model, ref, image = golden
    with torch.no_grad():
        out = copy.deepcopy(model).double()(image[:1].double())
    assert out.shape == ref["output_fp64_sample0"].shape
    assert (out - ref["output_fp64_sample0"]).abs().max().item() <= 1e-10


def test_float32_output_equals_official(golden):
    variant, model, ref, image = golden
    with torch.no_grad():
        out = model(image)
    assert out.shape == (2, 17, 64, 48)
    assert (out - ref["output_fp32"]).abs().max().item() <= FP32_ATOL[variant]


@pytest.mark.parametrize("variant", VARIANTS)
def test_conv_macs_equal_the_official_count(variant):
    assert count_macs(build_litehrnet(variant), (192, 256)) == CONV_MACS[variant]


def test_runs_at_384x288_with_other_joint_counts():
    model = build_litehrnet("30", num_joints=16).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 384, 288))
    assert out.shape == (2, 16, 96, 72) and torch.isfinite(out).all()


def test_unknown_variant_is_a_user_error_listing_the_choices():
    with pytest.raises(UserError, match="'w32'.*18, 30"):
        build_litehrnet("w32")


@pytest.mark.parametrize("head_prefix", ["keypoint_head.", "head."])  # mmpose 0.x / 1.x naming
def test_mmpose_checkpoint_loads(golden, head_prefix):
    variant, model, _, image = golden
    # released files need not keep the BN counters
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    state = {k.replace("keypoint_head.", head_prefix): v for k, v in own.items()}
    if head_prefix == "head.":  # mmpose 1.x also saves its input normalisation
        state |= {"data_preprocessor.mean": torch.zeros(3, 1, 1),
                  "data_preprocessor.std": torch.ones(3, 1, 1)}
    checkpoint = {"state_dict": state, "meta": {"epoch": 210, "mmpose_version": "0.14.0"}}
    assert list(normalize_state_dict(checkpoint, mmpose_keys=True)) == list(own)
    loaded = load_weights(build_litehrnet(variant), checkpoint).eval()
    with torch.no_grad():
        assert torch.equal(loaded(image[:1]), model(image[:1]))


def test_wrong_key_or_shape_is_a_clear_error(golden):
    variant, model, _, _ = golden
    state = dict(model.state_dict())
    state["backbone.stem.conv1.conv.weight"] = torch.zeros(32, 3, 5, 5)
    state["backbone.extra.weight"] = state.pop("backbone.stem.conv1.bn.weight")
    with pytest.raises(UserError) as err:
        load_weights(build_litehrnet(variant), {"state_dict": state})
    message = str(err.value)
    assert "\n" not in message
    assert "1 missing: backbone.stem.conv1.bn.weight" in message
    assert "1 unexpected: backbone.extra.weight" in message
    assert "backbone.stem.conv1.conv.weight [32, 3, 5, 5] vs [32, 3, 3, 3]" in message
    with pytest.raises(UserError, match="entry 'meta' is a dict"):  # no state_dict inside
        load_weights(build_litehrnet(variant), {"meta": {}, **state})
    # a 17-joint head into a 16-joint network
    with pytest.raises(UserError, match=r"final_layer.weight \[17, 40, 1, 1\] vs \[16, 40, 1, 1\]"):
        load_weights(build_litehrnet(variant, num_joints=16), model.state_dict())


@pytest.mark.slow
def test_onnx_export_runs_in_onnxruntime_like_torch(tmp_path):
    import onnxruntime as ort

    from engines.runtimes.export import INPUT_NAME, export_onnx

    model = build_litehrnet("18").eval()
    model.load_state_dict(seeded_weights(key_list("18")["keys"]))
    path = export_onnx(model, (192, 256), tmp_path / "litehrnet18.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = torch.randn(3, 3, 256, 192, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(image).numpy()
    got = session.run(None, {INPUT_NAME: image.numpy()})[0]  # batch 3: the batch axis is dynamic
    assert got.shape == expected.shape == (3, 17, 64, 48)
    assert np.abs(got - expected).max() < 1e-4

"""Heatmap codec against the official HRNet outputs (tests/fixtures/decode_golden.npz: batches 0
and 4 of decode_ref.npz, which hold the special cases, and the first flip case), plus DARK."""

from pathlib import Path

import numpy as np
import pytest
import torch

from engines.pose.codec import decode_heatmaps, flip_back, fuse_flip, get_max_preds
from engines.pose.schemas import COCO17
from trainer.targets import fliplr_joints, generate_target

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = np.load(FIXTURES / "decode_golden.npz")
COCO_JOINT_WEIGHTS = [1, 1, 1, 1, 1, 1, 1, 1.2, 1.2, 1.5, 1.5, 1, 1, 1.2, 1.2, 1.5, 1.5]


@pytest.mark.parametrize("batch", [0, 1])
def test_decode_matches_official(batch):
    hm = GOLDEN["hm"][batch]
    n, _, h, w = hm.shape
    preds, maxvals = get_max_preds(hm)
    np.testing.assert_array_equal(preds, GOLDEN["max_preds"][batch])
    np.testing.assert_array_equal(maxvals, GOLDEN["maxvals"][batch])
    identity = decode_heatmaps(hm, np.tile([w / 2, h / 2], (n, 1)), np.tile([w / 200, h / 200], (n, 1)))
    np.testing.assert_array_equal(identity[..., :2], GOLDEN["coords_hm"][batch])
    kpts = decode_heatmaps(hm, GOLDEN["center"][batch], GOLDEN["scale"][batch])
    assert kpts.shape == (n, 17, 3) and kpts.dtype == np.float32
    np.testing.assert_allclose(kpts[..., :2], GOLDEN["coords"][batch], atol=1e-2, rtol=0)
    np.testing.assert_array_equal(kpts[..., 2:], GOLDEN["maxvals"][batch])


def test_standard_decode_border_rule_masking_and_ties_by_hand():
    # Peaks on row 30, each with a higher left than right neighbour: the quarter step goes left,
    # but only for peaks strictly inside (1 < x < W-1), so x = 0, 1 and 47 stay where they are.
    hm = np.zeros((1, 6, 64, 48), np.float32)
    for joint, x in enumerate((0, 1, 46, 47)):
        hm[0, joint, 30, x] = 1.0
        hm[0, joint, 30, x - 1 if x else x + 1] = 0.5   # x = 0 has a right neighbour only
    hm[0, 4] = -0.5                     # nothing above 0: masked to the origin, maxval kept
    hm[0, 4, 10, 20] = -0.1
    hm[0, 5, 10, 10] = hm[0, 5, 40, 40] = 4.0   # a tie: the first in row-major order wins
    identity = dict(centers=np.array([[24.0, 32.0]]), scales=np.array([[48 / 200, 64 / 200]]))
    kpts = decode_heatmaps(hm, **identity)[0]
    np.testing.assert_array_equal(kpts[:, 0], [0, 1, 45.75, 47, 0, 10])
    np.testing.assert_array_equal(kpts[:, 1], [30, 30, 30, 30, 0, 10])
    np.testing.assert_allclose(kpts[:, 2], [1, 1, 1, 1, -0.1, 4])


def test_decode_matches_tiny_model_reference():
    ref = torch.load(FIXTURES / "hrnet_tiny_ref.pt", weights_only=True)
    kpts = decode_heatmaps(ref["output_fliptest"].numpy(), ref["decode_center"].numpy(), ref["decode_scale"].numpy())
    np.testing.assert_allclose(kpts[..., :2], ref["decode_preds"].numpy(), atol=1e-2, rtol=0)
    np.testing.assert_array_equal(kpts[..., 2:], ref["decode_maxvals"].numpy())


def test_flip_back_and_fusion_exact():
    assert {tuple(pair) for pair in GOLDEN["flip_pairs"]} == set(COCO17.flip_pairs)  # the official ones
    order = COCO17.flip_permutation()
    np.testing.assert_array_equal(flip_back(GOLDEN["flipback_in"], order), GOLDEN["flipback_out"])
    fused = fuse_flip(GOLDEN["fliptest_orig"], GOLDEN["fliptest_flipped"], order)
    assert fused.dtype == np.float32
    np.testing.assert_array_equal(fused, GOLDEN["fliptest_out"])


@pytest.mark.parametrize("case", range(3))
def test_generate_target_exact(case):
    g = {k[4:]: GOLDEN[k] for k in GOLDEN.files if k.startswith(f"tg{case}_")}
    weights = COCO_JOINT_WEIGHTS if g["diff_w"] else None
    target, weight = generate_target(g["joints"], g["joints_vis"], g["image_size"], g["heatmap_size"],
                                     int(g["sigma"]), weights)
    assert target.dtype == weight.dtype == np.float32
    np.testing.assert_array_equal(target, g["target"])
    np.testing.assert_array_equal(weight, g["target_weight"])


@pytest.mark.parametrize("case", range(2))
def test_fliplr_joints_exact(case):
    joints, vis = fliplr_joints(GOLDEN[f"fl{case}_joints"], GOLDEN[f"fl{case}_joints_vis"],
                                int(GOLDEN[f"fl{case}_width"]), COCO17.flip_permutation())
    np.testing.assert_array_equal(joints, GOLDEN[f"fl{case}_out_joints"])
    np.testing.assert_array_equal(vis, GOLDEN[f"fl{case}_out_vis"])


def _gaussian_heatmaps(centres_xy, h=64, w=48, sigma=2.0):
    ys, xs = np.mgrid[:h, :w].astype(np.float64)
    cx, cy = centres_xy[:, 0, None, None], centres_xy[:, 1, None, None]
    return np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma ** 2)).astype(np.float32)


def test_dark_beats_quarter_offset_on_subpixel_gaussians():
    rng = np.random.default_rng(7)
    truth = np.stack([rng.uniform(5, 43, 40), rng.uniform(5, 59, 40)], axis=1)
    hm = _gaussian_heatmaps(truth).reshape(4, 10, 64, 48)
    identity = dict(centers=np.tile([24.0, 32.0], (4, 1)), scales=np.tile([48 / 200, 64 / 200], (4, 1)))
    err = {}
    for method in ("standard", "dark"):
        kpts = decode_heatmaps(hm, method=method, **identity).reshape(40, 3)
        err[method] = np.linalg.norm(kpts[:, :2] - truth, axis=1)
    assert err["dark"].mean() < 0.05 < err["standard"].mean()
    assert err["dark"].max() < err["standard"].max()


def test_dark_keeps_maxvals_and_masks_empty_heatmaps():
    hm = np.zeros((1, 2, 64, 48), np.float32)
    hm[0, 1] = _gaussian_heatmaps(np.array([[20.3, 30.6]]))[0] * 0.7
    kpts = decode_heatmaps(hm, np.array([[100.0, 100.0]]), np.array([[0.96, 1.28]]), method="dark")
    assert np.isfinite(kpts).all()
    assert kpts[0, 0, 2] == 0 and kpts[0, 1, 2] == pytest.approx(hm[0, 1].max())
    with pytest.raises(ValueError):
        decode_heatmaps(hm, np.zeros((1, 2)), np.ones((1, 2)), method="nope")


def test_decode_of_no_people_is_empty():
    out = decode_heatmaps(np.zeros((0, 17, 64, 48), np.float32), np.zeros((0, 2)), np.zeros((0, 2)))
    assert out.shape == (0, 17, 3)


def test_mmpose_rule_steps_each_axis_on_its_own_and_puts_silent_joints_at_minus_one():
    """mmpose 1.x's refine_keypoints: x steps when 1 < x < W-1 and 0 < y < H, y when 1 < y < H-1
    and 0 < x < W; a joint without a positive value sits at (-1, -1). The official rule needs both
    axes inside, and puts it at the origin."""
    hm = np.zeros((1, 5, 64, 48), np.float32)
    hm[0, 0, 1, 20], hm[0, 0, 1, 19], hm[0, 0, 2, 20] = 1.0, 0.5, 0.5   # y = 1: x steps only
    hm[0, 1, 0, 20], hm[0, 1, 0, 19] = 1.0, 0.5                        # y = 0: neither
    hm[0, 2, 30, 1], hm[0, 2, 31, 1], hm[0, 2, 30, 0] = 1.0, 0.5, 0.5   # x = 1: y steps only
    hm[0, 3, 30, 20], hm[0, 3, 30, 21], hm[0, 3, 29, 20] = 1.0, 0.5, 0.5  # inside: both
    hm[0, 4] = -0.2                                                    # no positive response
    identity = dict(centers=np.array([[24.0, 32.0]]), scales=np.array([[48 / 200, 64 / 200]]))
    mmpose = decode_heatmaps(hm, **identity, rule="mmpose")[0]
    np.testing.assert_array_equal(mmpose[:, :2], [[19.75, 1], [20, 0], [1, 30.25], [20.25, 29.75], [-1, -1]])
    official = decode_heatmaps(hm, **identity, rule="hrnet")[0]
    np.testing.assert_array_equal(official[:, :2], [[20, 1], [20, 0], [1, 30], [20.25, 29.75], [0, 0]])
    np.testing.assert_array_equal(mmpose[:, 2], official[:, 2])
    dark = decode_heatmaps(hm, **identity, method="dark", rule="mmpose")[0]
    np.testing.assert_array_equal(dark[4, :2], [-1, -1])
    with pytest.raises(ValueError):
        decode_heatmaps(hm, **identity, rule="nope")

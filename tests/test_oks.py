"""OKS, OKS-NMS and soft OKS-NMS against the official HRNet lib/nms outputs, and oks_matrix."""

from pathlib import Path

import numpy as np
import pytest

from engines.pose.oks import oks_matrix, oks_pairs
from trainer.oks_nms import oks_iou, oks_nms, soft_oks_nms
from engines.pose.schemas import COCO17

GOLDEN = np.load(Path(__file__).parent / "fixtures" / "decode_golden.npz")


@pytest.mark.parametrize("case", range(3))
def test_nms_keep_lists_match_official(case):
    kpts, areas, scores = GOLDEN[f"nms{case}_kpts"], GOLDEN[f"nms{case}_areas"], GOLDEN[f"nms{case}_scores"]
    thresh = float(GOLDEN[f"nms{case}_thresh"])
    assert oks_nms(kpts, scores, areas, thresh) == GOLDEN[f"nms{case}_keep"].tolist()
    assert soft_oks_nms(kpts, scores, areas, thresh) == GOLDEN[f"nms{case}_soft_keep"].tolist()
    np.testing.assert_allclose(oks_iou(kpts[0], kpts[1:], areas[0], areas[1:]),
                               GOLDEN[f"nms{case}_oks_0_vs_rest"], rtol=1e-12, atol=1e-12)


def test_nms_suppresses_a_near_duplicate():
    rng = np.random.default_rng(3)
    pose = np.concatenate([rng.uniform(0, 100, (17, 2)), np.ones((17, 1))], axis=1)
    other = pose.copy()
    other[:, :2] += 300
    kpts = np.stack([pose, pose + [0.5, 0.5, 0], other]).astype(np.float32)
    keep = oks_nms(kpts, np.array([0.9, 0.95, 0.5]), np.full(3, 100.0 * 100.0), 0.9)
    assert keep == [1, 2]


def _random_poses(rng, n):
    xy = rng.uniform(0, 200, (n, 17, 2))
    return np.concatenate([xy, rng.uniform(0, 1, (n, 17, 1))], axis=2).astype(np.float32)


def test_oks_matrix_equals_pairwise_definition():
    rng = np.random.default_rng(5)
    a, b = _random_poses(rng, 4), _random_poses(rng, 3)
    b[1] = a[2] + [0.5, -0.5, 0.0]
    areas = rng.uniform(500, 5000, 4)
    sigmas = COCO17.sigmas_array
    m = oks_matrix(a, b, areas, sigmas)
    assert m.shape == (4, 3)
    # with no gating, oks_matrix is oks_iou with both areas equal to a's area
    for i in range(4):
        np.testing.assert_allclose(m[i], oks_iou(a[i], b, areas[i], np.full(3, areas[i]), sigmas), rtol=1e-6)
    assert m[2, 1] > 0.9 and m[2, 1] == m[:, 1].max()

    gated = oks_matrix(a, b, areas, sigmas, score_thresh=0.5)
    var = (2 * sigmas.astype(np.float64)) ** 2
    for i in range(4):
        for j in range(3):
            ok = (a[i, :, 2] >= 0.5) & (b[j, :, 2] >= 0.5)
            d2 = ((a[i, :, :2].astype(np.float64) - b[j, :, :2]) ** 2).sum(1)
            expect = np.exp(-d2 / var / (areas[i] + np.spacing(1)) / 2)[ok].mean() if ok.any() else 0.0
            assert gated[i, j] == pytest.approx(expect, rel=1e-9)


def test_oks_matrix_with_no_shared_confident_joint_is_zero_and_empty_inputs():
    a = np.zeros((1, 17, 3), np.float32)
    b = np.ones((2, 17, 3), np.float32)
    assert (oks_matrix(a, b, np.array([100.0]), COCO17.sigmas_array, score_thresh=0.3) == 0).all()
    assert oks_matrix(np.zeros((0, 17, 3)), b, np.zeros(0), COCO17.sigmas_array).shape == (0, 2)


def test_oks_matrix_leaves_out_non_finite_joints_like_unscored_ones():
    rng = np.random.default_rng(6)
    a = rng.uniform(0, 400, (3, 17, 3))
    b = a[[2, 0]] + rng.normal(0, 8, (2, 17, 3))
    a[..., 2], b[..., 2] = 1.0, 1.0
    areas = rng.uniform(2000, 40000, 3)
    with_nan, unscored = b.copy(), b.copy()
    with_nan[0, 4, 0] = np.nan
    unscored[0, 4, 2] = 0.0
    got = oks_matrix(a, with_nan, areas, COCO17.sigmas_array, score_thresh=0.5)
    assert np.isfinite(got).all()
    assert np.array_equal(got, oks_matrix(a, unscored, areas, COCO17.sigmas_array, score_thresh=0.5))
    assert got[2, 0] > 0.5 and got[0, 1] > 0.5


def test_oks_pairs_is_the_matrix_at_those_pairs_with_gating_and_non_finite_joints():
    rng = np.random.default_rng(8)
    a, b = _random_poses(rng, 5), _random_poses(rng, 4)
    b[3] = a[1] + [1.0, -1.0, 0.0]
    a[0, 2, 0] = np.nan
    areas = rng.uniform(500, 5000, 5)
    full = oks_matrix(a, b, areas, COCO17.sigmas_array, score_thresh=0.4)
    i, j = np.array([0, 1, 4, 1]), np.array([2, 3, 0, 0])
    got = oks_pairs(a[i], b[j], areas[i], COCO17.sigmas_array, score_thresh=0.4)
    np.testing.assert_allclose(got, full[i, j], rtol=1e-12)
    assert got[1] > 0.9 and np.isfinite(got).all()

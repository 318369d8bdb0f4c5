"""Geometry against the official HRNet outputs (tests/fixtures/decode_golden.npz, a subset of
../shared/fixtures/hrnet_reference/decode_ref.npz) and on hand-made boxes. The official crop
itself is checked against engines.pose.torch_ops.warp_crops in test_torch_ops.py."""

from pathlib import Path

import numpy as np
import pytest

from engines.pose.geometry import affine_points, box_to_center_scale, crop_people, get_affine_transform

GOLDEN = np.load(Path(__file__).parent / "fixtures" / "decode_golden.npz")


@pytest.mark.parametrize("case", range(8))
def test_affine_matches_official(case):
    args = (GOLDEN["aff_center"][case], GOLDEN["aff_scale"][case], GOLDEN["aff_rot"][case],
            GOLDEN["aff_output_size"][case])
    np.testing.assert_allclose(get_affine_transform(*args), GOLDEN["aff_fwd"][case], atol=1e-3)
    np.testing.assert_allclose(get_affine_transform(*args, inv=True), GOLDEN["aff_inv"][case], atol=1e-3)


def test_crop_people_maps_each_box_onto_its_crop():
    # a frame whose blue and green values are its x and y: each crop pixel must show where it came from
    ys, xs = np.mgrid[:120, :160]
    frame = np.stack([xs, ys, np.zeros_like(xs)], axis=2).astype(np.uint8)
    boxes = np.array([[10, 20, 58, 84], [100, 30, 140, 110]], np.float32)
    centers, scales = box_to_center_scale(boxes, (48, 64))
    crops = crop_people(frame, centers, scales, (48, 64))
    assert crops.shape == (2, 64, 48, 3) and crops.dtype == np.uint8
    v, u = np.mgrid[:64, :48]
    for crop, center, scale in zip(crops, centers, scales):
        src_w, src_h = scale * 200.0      # the padded, aspect-fixed box the crop covers
        x = center[0] + (u - 24) * src_w / 48
        y = center[1] + (v - 32) * src_h / 64
        inside = (x >= 0) & (x <= 159) & (y >= 0) & (y <= 119)
        assert inside.mean() > 0.5
        assert np.abs(crop[..., 0][inside] - x[inside]).max() <= 1
        assert np.abs(crop[..., 1][inside] - y[inside]).max() <= 1
        beyond = (x < -1) | (x > 160) | (y < -1) | (y > 120)      # the black border
        assert (crop[beyond] == 0).all()


def test_box_to_center_scale_fixes_aspect_and_pads():
    boxes = np.array([[0, 0, 30, 40], [10, 10, 110, 30], [0, 0, 60, 20]], np.float32)
    centers, scales = box_to_center_scale(boxes, (192, 256))
    np.testing.assert_allclose(centers, [[15, 20], [60, 20], [30, 10]])
    # 30x40 already has aspect 0.75; 100x20 is too wide -> h = w / 0.75
    np.testing.assert_allclose(scales[0], np.array([30, 40]) / 200 * 1.25, rtol=1e-6)
    np.testing.assert_allclose(scales[1], np.array([100, 100 / 0.75]) / 200 * 1.25, rtol=1e-6)
    assert centers.dtype == scales.dtype == np.float32
    tall = box_to_center_scale(np.array([[0, 0, 10, 100]], np.float32), (192, 256))[1][0]
    np.testing.assert_allclose(tall, np.array([75, 100]) / 200 * 1.25, rtol=1e-6)


def test_affine_points_round_trip():
    m = get_affine_transform(np.array([50, 60]), np.array([1.0, 1.3]), 20, (48, 64))
    minv = get_affine_transform(np.array([50, 60]), np.array([1.0, 1.3]), 20, (48, 64), inv=True)
    pts = np.random.default_rng(1).uniform(0, 100, (5, 3, 2)).astype(np.float32)
    back = affine_points(affine_points(pts, m), minv)
    assert back.shape == pts.shape and back.dtype == np.float32
    np.testing.assert_allclose(back, pts, atol=1e-3)

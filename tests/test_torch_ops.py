"""engines.pose.torch_ops and TorchProcessing against the numpy path: crops vs cv2.warpAffine and
the official rotated crop, network input vs NumpyProcessing's, decode vs
engines.pose.codec.decode_heatmaps under both families' rules. Runs on CPU torch; the same checks
on CUDA are marked gpu."""

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from engines.models.catalogue import IMAGENET_MEAN, IMAGENET_STD
from engines.pose import torch_ops
from engines.pose.codec import RULES, decode_heatmaps, fuse_flip
from engines.pose.geometry import affine_points, box_to_center_scale, crop_people, get_affine_transform
from engines.pose.normalization import normalize_crops
from engines.pose.processing import NumpyProcessing, ProcessingSpec, TorchProcessing
from engines.pose.schemas import COCO17

IMAGE_SIZE = (192, 256)  # w, h
HEATMAP_SIZE = (48, 64)

SPEC = ProcessingSpec(IMAGE_SIZE, HEATMAP_SIZE, IMAGENET_MEAN, IMAGENET_STD, tuple(COCO17.flip_permutation()))
DEVICES = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")])]


def textured_frame(height=360, width=640, seed=0) -> np.ndarray:
    """Smooth colour noise with hard-edged shapes and text: both gentle and sharp edges."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8, width // 8, 3)).astype(np.uint8)
    frame = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    cv2.circle(frame, (300, 200), 60, (20, 200, 90), -1)
    cv2.rectangle(frame, (420, 40), (470, 330), (250, 250, 250), -1)
    cv2.putText(frame, "HRNet", (50, 300), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
    return frame


# inside, across every frame edge, tiny, fractional, and wholly outside the frame
BOXES = np.array([[100, 50, 220, 330], [300, 100, 500, 300], [-50, -20, 80, 150],
                  [600, 300, 700, 420], [10.3, 20.7, 60.1, 90.9], [700, 400, 800, 500]],
                 dtype=np.float32)


@pytest.mark.parametrize("device", DEVICES)
def test_crops_match_cv2_warp_affine_within_one_grey_level(device):
    frame = textured_frame()
    centers, scales = box_to_center_scale(BOXES, IMAGE_SIZE)
    expected = crop_people(frame, centers, scales, IMAGE_SIZE).astype(np.float32)

    matrices = torch_ops.crop_matrices(centers, scales, IMAGE_SIZE)
    crops = torch_ops.warp_crops(torch_ops.upload_frame(frame, device), matrices, IMAGE_SIZE)

    assert crops.shape == (len(BOXES), 3, IMAGE_SIZE[1], IMAGE_SIZE[0])
    assert crops.device.type == device
    diff = np.abs(crops.permute(0, 2, 3, 1).cpu().numpy() - expected)
    assert diff.max() <= 1.0, diff.max()  # cv2 rounds to uint8: 0.5 of it is rounding alone
    assert diff.mean() < 0.3
    assert expected[-1].max() == 0 and crops[-1].abs().max() == 0  # outside the frame: black


def test_crops_follow_the_matrix_not_just_the_box_size():
    """A crop of the right size but shifted by one pixel must fail the tolerance: the test above
    really checks geometry."""
    frame = textured_frame(seed=1)
    centers, scales = box_to_center_scale(BOXES[:2], IMAGE_SIZE)
    expected = crop_people(frame, centers + [1.0, 0.0], scales, IMAGE_SIZE).astype(np.float32)
    crops = torch_ops.warp_crops(torch_ops.upload_frame(frame, "cpu"),
                               torch_ops.crop_matrices(centers, scales, IMAGE_SIZE), IMAGE_SIZE)
    assert np.abs(crops.permute(0, 2, 3, 1).numpy() - expected).max() > 10


def test_warp_crops_reproduce_the_official_rotated_crop():
    """The official code's crop of a test image (rotated 15 degrees, from decode_golden.npz),
    rounded to uint8 as cv2.warpAffine rounds it."""
    golden = np.load(Path(__file__).parent / "fixtures" / "decode_golden.npz")
    image, official = golden["crop_img"], golden["crop_out"].astype(np.float32)
    w, h = (int(v) for v in golden["crop_output_size"])
    m = get_affine_transform(golden["crop_center"], golden["crop_scale"], golden["crop_rot"], (w, h))
    crop = torch_ops.warp_crops(torch_ops.upload_frame(image, "cpu"), m[None], (w, h))[0].permute(1, 2, 0).numpy()
    diff = np.abs(np.round(crop) - official).max(axis=2)
    # Pixels whose bilinear footprint touches the black border blend it differently in OpenCV 5
    # (the reference) and in OpenCV 4's fixed point (emulated here): compare those more loosely.
    ys, xs = np.mgrid[:h, :w]
    src = affine_points(np.stack([xs, ys], -1).astype(np.float64), cv2.invertAffineTransform(m))
    img_h, img_w = image.shape[:2]
    inside = (src[..., 0] >= 0) & (src[..., 0] <= img_w - 1) & (src[..., 1] >= 0) & (src[..., 1] <= img_h - 1)
    assert inside.mean() > 0.8
    assert diff[inside].max() <= 1
    assert diff.max() <= 4


def on(device):
    """TorchProcessing's input steps need only the backend's device."""
    return TorchProcessing(SPEC, SimpleNamespace(device=torch.device(device)))


def test_no_people_gives_an_empty_batch():
    frame = textured_frame()
    crops = on("cpu").inputs(frame, np.zeros((0, 2)), np.zeros((0, 2)))
    assert crops.shape == (0, 3, IMAGE_SIZE[1], IMAGE_SIZE[0])
    decoded = torch_ops.decode_heatmaps(torch.zeros(0, 17, 64, 48), np.zeros((0, 2)), np.zeros((0, 2)))
    assert decoded.shape == (0, 17, 3)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_network_input_matches_the_numpy_one(device):
    frame = textured_frame(seed=2)
    centers, scales = box_to_center_scale(BOXES[:5], IMAGE_SIZE)
    expected = NumpyProcessing(SPEC, backend=None).inputs(frame, centers, scales)

    got = on(device).inputs(frame, centers, scales)

    assert got.dtype == torch.float32 and got.shape == expected.shape
    # one grey level is 1/255/std ~ 0.0175 in normalised units
    assert np.abs(got.cpu().numpy() - expected).max() <= 1.0 / 255 / 0.224 + 1e-4


def test_normalize_crops_is_rgb_imagenet_and_casts():
    crops_bgr = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (2, 3, 8, 6))).float()
    expected = normalize_crops(crops_bgr.permute(0, 2, 3, 1).numpy().astype(np.uint8), IMAGENET_MEAN, IMAGENET_STD)
    got = torch_ops.normalize_crops(crops_bgr, IMAGENET_MEAN, IMAGENET_STD, dtype=torch.float16)
    assert got.dtype == torch.float16
    np.testing.assert_allclose(got.float().numpy(), expected, atol=2e-3)


def heatmaps_with_edge_cases(seed=0, people=6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hm = (rng.random((people, 17, *HEATMAP_SIZE[::-1]), dtype=np.float32) ** 8)
    hm[0, 0] = -0.5                     # all negative: origin, official mask
    hm[1, 1] = 0.0                      # all zero
    hm[1, 2, 0, 7] = 3.0                # peak on the border row: no offset
    hm[2, 3, 1, 10] = 3.0               # row 1 is not "inside" either (1 < y)
    hm[2, 4, 30, 20] = 3.0              # inside, equal neighbours in x: sign 0
    hm[2, 4, 30, 19] = hm[2, 4, 30, 21] = 1.0
    hm[3, 5, 10, 10] = hm[3, 5, 40, 40] = 4.0  # tie: first in row-major order wins
    return hm


def smooth_heatmaps(seed=0, people=6) -> np.ndarray:
    """Noisy Gaussian blobs anywhere (also off the map and at its edges), as a network gives."""
    rng = np.random.default_rng(seed)
    width, height = HEATMAP_SIZE
    ys, xs = np.mgrid[:height, :width]
    centres = rng.uniform(-2, [width + 1, height + 1], (people, 17, 2))
    peaks = rng.uniform(0.05, 1, (people, 17, 1, 1))
    blobs = np.exp(-((xs - centres[..., :1, None]) ** 2 + (ys - centres[..., 1:, None]) ** 2) / 8)
    hm = (peaks * blobs + rng.normal(0, 0.01, (people, 17, height, width))).astype(np.float32)
    hm[0, 0] = -0.5                     # all negative: origin, no step
    hm[1, 1] = 0.0                      # flat: no step
    return hm


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("method, make_heatmaps", [("standard", heatmaps_with_edge_cases),
                                                   ("dark", smooth_heatmaps)])
def test_decode_matches_the_cpu_decode(device, rule, method, make_heatmaps):
    hm = make_heatmaps()
    boxes = np.concatenate([BOXES[:5], [[5, 5, 40, 200]]]).astype(np.float32)
    centers, scales = box_to_center_scale(boxes, IMAGE_SIZE, rule=rule)
    expected = decode_heatmaps(hm, centers, scales, method, rule, blur_sigma=2.0)

    got = torch_ops.decode_heatmaps(torch.from_numpy(hm).to(device), centers, scales, method, rule, 2.0)

    assert got.shape == expected.shape and got.device.type == device
    np.testing.assert_allclose(got.cpu().numpy(), expected, atol=1e-3, rtol=0)


def test_decode_accepts_half_precision_heatmaps():
    hm = heatmaps_with_edge_cases(seed=4)
    centers, scales = box_to_center_scale(BOXES, IMAGE_SIZE)
    half = torch.from_numpy(hm).half()
    expected = decode_heatmaps(half.float().numpy(), centers, scales)
    got = torch_ops.decode_heatmaps(half, centers, scales)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-3, rtol=0)


def test_flip_fusion_matches_the_cpu_fusion():
    rng = np.random.default_rng(5)
    plain, mirrored = rng.random((2, 3, 17, *HEATMAP_SIZE[::-1]), dtype=np.float32)
    order = COCO17.flip_permutation()
    expected = fuse_flip(plain, mirrored, order)
    got = torch_ops.fuse_flip(torch.from_numpy(plain), torch.from_numpy(mirrored), order)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6, rtol=0)

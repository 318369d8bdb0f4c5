"""PoseEstimator: boxes in, frame-pixel keypoints out; flip test against the official network;
torch vs onnxruntime parity; bad boxes; no boxes."""

from pathlib import Path

import numpy as np
import pytest
import torch

from engines.errors import UserError
from engines.pose.estimator import PoseEstimator
from engines.runtimes.backends import OnnxRuntimeBackend
from engines.models.presets import Preset

FIXTURE = Path(__file__).parent / "fixtures" / "hrnet_tiny_ref.pt"


@pytest.fixture(scope="module")
def ref():
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(scope="module")
def tiny_preset(ref):
    return Preset("tiny_ref", ref["MODEL_EXTRA"], tuple(ref["IMAGE_SIZE_WH"]),
                  tuple(ref["HEATMAP_SIZE_WH"]), num_joints=ref["NUM_JOINTS"])


class PeakBackend:
    """Stands in for the network: records its input, returns one peak per heatmap at `peak_xy`."""

    name = "peak"

    def __init__(self, heatmap_wh, num_joints, peak_xy, value=0.9):
        self.heatmap_wh, self.num_joints, self.peak_xy, self.value = heatmap_wh, num_joints, peak_xy, value
        self.calls = []

    def __call__(self, images):
        self.calls.append(images.copy())
        w, h = self.heatmap_wh
        hm = np.zeros((len(images), self.num_joints, h, w), np.float32)
        hm[:, :, self.peak_xy[1], self.peak_xy[0]] = self.value
        return hm


def with_peak_backend(estimator, peak_xy):
    backend = PeakBackend(estimator.preset.heatmap_size, estimator.num_joints, peak_xy)
    estimator.processing.backend = backend
    return backend


@pytest.fixture()
def lite():
    torch.manual_seed(0)
    return PoseEstimator("lite_w16_160x128")


def test_no_boxes_gives_empty_result_without_running_the_network(lite):
    backend = with_peak_backend(lite, (16, 20))
    frame = np.zeros((120, 160, 3), np.uint8)
    for boxes in (np.zeros((0, 4), np.float32), np.zeros((0, 5), np.float32), []):
        out = lite.estimate(frame, boxes)
        assert out.shape == (0, 17, 3) and out.dtype == np.float32
    assert backend.calls == []


def test_keypoints_are_back_projected_to_frame_pixels(lite):
    # heatmap 32x40 for a 128x160 crop; a peak at the heatmap centre decodes to the box centre,
    # one 4 px to the right of it to centre + 4 * (crop width in frame px) / 32
    frame = np.zeros((300, 400, 3), np.uint8)
    boxes = np.array([[10, 20, 110, 220, 0.9], [200, 50, 300, 150, 0.5]], np.float32)
    with_peak_backend(lite, (16, 20))
    centred = lite.estimate(frame, boxes)
    np.testing.assert_allclose(centred[:, :, 0], [[60] * 17, [250] * 17], atol=1e-3)
    np.testing.assert_allclose(centred[:, :, 1], [[120] * 17, [100] * 17], atol=1e-3)
    np.testing.assert_allclose(centred[:, :, 2], 0.9)
    with_peak_backend(lite, (20, 20))
    shifted = lite.estimate(frame, boxes)
    # box 0: 100x200 widened to the 0.8 aspect -> 160 px wide, x1.25 padding -> 200 px crop width
    # box 1: 100x100 -> height grows to 125, padded width 125 px
    np.testing.assert_allclose(shifted[0, :, 0], 60 + 4 * 200 / 32, atol=1e-2)
    np.testing.assert_allclose(shifted[1, :, 0], 250 + 4 * 125 / 32, atol=1e-2)


class BlobBackend(PeakBackend):
    """A Gaussian heatmap blob (sigma 2) centred between pixels at `peak_xy` (floats)."""

    def __call__(self, images):
        self.calls.append(images.copy())
        w, h = self.heatmap_wh
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        blob = np.exp(-((xs - self.peak_xy[0]) ** 2 + (ys - self.peak_xy[1]) ** 2) / (2 * 2.0 ** 2))
        return np.broadcast_to(blob, (len(images), self.num_joints, h, w)).astype(np.float32)


def test_dark_decode_finds_sub_pixel_peaks_better_than_quarter_offsets():
    frame = np.zeros((300, 400, 3), np.uint8)
    box = np.array([[10, 20, 110, 220]], np.float32)  # crop width 200 px: 6.25 frame px per heatmap px
    errors = {}
    for method in ("standard", "dark"):
        est = PoseEstimator("lite_w16_160x128", decode=method)
        est.processing.backend = BlobBackend(est.preset.heatmap_size, est.num_joints, (16.4, 20.0))
        x = est.estimate(frame, box)[0, :, 0]
        errors[method] = np.abs(x - (60 + 0.4 * 6.25)).max()
    assert errors["dark"] < 0.6 < errors["standard"]


def test_crops_are_rgb_and_imagenet_normalised(lite):
    frame = np.empty((200, 200, 3), np.uint8)
    frame[:] = (30, 120, 200)  # BGR
    backend = with_peak_backend(lite, (16, 20))
    lite.estimate(frame, np.array([[50, 50, 150, 150]], np.float32))
    (images,) = backend.calls
    w, h = lite.preset.image_size
    assert images.shape == (1, 3, h, w) and images.dtype == np.float32
    # RGB order, then the ImageNet mean and std every HRNet checkpoint was trained with
    expected = (np.array([200, 120, 30]) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(images[0, :, h // 2, w // 2], expected, atol=1e-5)


def test_unusable_boxes_give_zero_rows_and_never_nan(lite):
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 110, 210],          # fine
                      [np.nan, 10, 50, 50],        # NaN
                      [40, 40, 40, 90],            # zero width
                      [400, 300, 500, 400],        # entirely outside
                      [-50, 10, 50, 110]],         # partly outside: clamped to x >= 0
                     np.float32)
    out = lite.estimate(frame, boxes)  # the real (random-weight) network
    assert out.shape == (5, 17, 3) and np.isfinite(out).all()
    assert not out[1:4].any()
    assert out[[0, 4]].any(axis=(1, 2)).all()
    with_peak_backend(lite, (16, 20))
    centres = lite.estimate(frame, boxes)[:, 0, :2]
    np.testing.assert_allclose(centres[[0, 4]], [[60, 110], [25, 60]], atol=0.6)


def test_flip_test_reproduces_the_official_fusion(ref, tiny_preset):
    # official validate(): (output + shift(flip_back(model(flipped input)))) / 2
    est = PoseEstimator(tiny_preset, weights=ref["state_dict"], flip_test=True)
    fused = est.heatmaps(ref["input"].numpy())
    assert np.abs(fused - ref["output_fliptest"].numpy()).max() <= 1e-4
    est.flip_test = False
    assert np.abs(est.heatmaps(ref["input"].numpy()) - ref["output"].numpy()).max() <= 1e-4


def test_channels_last_gives_the_same_heatmaps(ref, tiny_preset):
    images = ref["input"].numpy()
    plain = PoseEstimator(tiny_preset, weights=ref["state_dict"], backend="torch").heatmaps(images)
    nhwc = PoseEstimator(tiny_preset, weights=ref["state_dict"], backend="torch", channels_last=True).heatmaps(images)
    assert np.abs(plain - nhwc).max() <= 1e-4


def test_library_defaults_are_the_command_lines():
    # PoseEstimator with no options runs as `python -m tracker` does with none
    from tracker.app import build_parser

    args = build_parser().parse_args([])
    est = PoseEstimator("lite_w16_160x128")
    assert est.decode == args.decode
    assert isinstance(est.backend, OnnxRuntimeBackend) and args.backend is None


@pytest.mark.parametrize("kwargs,message", [
    ({"backend": "tensorflow"}, "unknown backend"),
    ({"decode": "soft-argmax"}, "unknown decode"),
    ({"backend": "onnxruntime", "half": True}, "half precision"),
    ({"device": "tpu"}, "unknown device"),
    ({"backend": "onnxruntime", "workers": 0}, "workers must be >= 1"),
    ({"backend": "onnxruntime", "device": "cuda", "workers": 2}, "onnxruntime CPU option"),
])
def test_bad_settings_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        PoseEstimator("lite_w16_160x128", **kwargs)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fp32_and_fp16_match_cpu(ref, tiny_preset):
    images = ref["input"].numpy()
    cpu = PoseEstimator(tiny_preset, weights=ref["state_dict"], backend="torch").heatmaps(images)
    gpu = PoseEstimator(tiny_preset, weights=ref["state_dict"], device="cuda").heatmaps(images)
    half = PoseEstimator(tiny_preset, weights=ref["state_dict"], device="cuda", half=True).heatmaps(images)
    assert np.abs(gpu - cpu).max() <= 1e-3
    assert np.abs(half - cpu).max() <= 5e-2 * max(1.0, np.abs(cpu).max())

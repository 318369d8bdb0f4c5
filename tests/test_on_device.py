"""PoseEstimator with pre- and post-processing in torch on the backend's device (the CUDA path),
against the official CPU path (cv2 crops, numpy decode), on synthetic people with the bundled
weights. Runs on CPU torch; the CUDA comparison is marked gpu."""

import cv2
import numpy as np
import pytest
import torch

from engines.errors import UserError
from engines.pose.estimator import PoseEstimator
from engines.tools.parity import compare, estimate_all, load_people
from engines.models.weights import bundled_weights

PRESET = "lite_w16_160x128"


@pytest.fixture(scope="module")
def people(make_synth_images):
    root = make_synth_images("on_device", "640x360", ("val", 10, 21))
    return load_people(root / "val" / "annotations.json", None, None, 17)[1]


def estimator(backend="torch", **options) -> PoseEstimator:
    return PoseEstimator(PRESET, bundled_weights(PRESET), backend=backend, **options)


@pytest.mark.parametrize("flip_test", [False, True])
def test_on_device_dark_keypoints_match_the_cpu_path(people, flip_test):
    host = estimate_all(estimator(decode="dark", flip_test=flip_test), people)
    device = estimate_all(estimator(decode="dark", flip_test=flip_test, on_device=True), people)
    distances = compare(host, device)
    assert distances["joints"] > 200
    assert distances["px_p99"] <= 0.5, distances
    np.testing.assert_allclose(device[..., 2], host[..., 2], atol=0.03)


def test_on_device_standard_decode_differs_only_by_rare_quarter_steps(people):
    host = estimate_all(estimator(decode="standard"), people)
    device = estimate_all(estimator(decode="standard", on_device=True), people)
    distances = compare(host, device)
    assert distances["px_median"] == 0.0
    assert distances["within_0.5px_pct"] >= 97.0, distances


def test_on_device_sends_plain_and_mirrored_crops_in_one_call(people):
    est = estimator(flip_test=True, on_device=True)
    calls = []
    run_tensor = est.backend.run_tensor
    est.backend.run_tensor = lambda images: calls.append(tuple(images.shape)) or run_tensor(images)
    _, path, boxes = people[0]
    keypoints = est.estimate(cv2.imread(str(path)), boxes)
    assert calls == [(2 * len(boxes), 3, 160, 128)]
    assert keypoints.shape == (len(boxes), 17, 3) and keypoints[..., 2].max() > 0.3


def test_on_device_is_automatic_only_on_cuda():
    assert not estimator().on_device  # cpu torch: the cv2 path
    assert not estimator(backend="onnxruntime").on_device


def test_on_device_needs_a_torch_based_backend():
    with pytest.raises(UserError, match="torch-based backend"):
        estimator(backend="onnxruntime", on_device=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("half", [False, True])
def test_cuda_estimator_matches_the_cpu_path(people, half):
    host = estimate_all(estimator(decode="dark"), people)
    cuda = estimator(decode="dark", device="cuda", half=half)
    assert cuda.on_device
    distances = compare(host, estimate_all(cuda, people))
    assert distances["px_p99"] <= 0.5, distances

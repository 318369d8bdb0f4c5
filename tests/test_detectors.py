"""Detectors: YOLOX and Ultralytics output decoding on small real ONNX models whose outputs we
choose, letterboxing, NMS, frame validation, and OpenCV HOG on a real photo."""

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engines.detectors import load_detector, nms
from engines.detectors.hog import HogDetector
from engines.common.letterbox import letterbox
from engines.detectors.ultralytics_yolo import UltralyticsDetector
from engines.detectors.yolox import YoloxDetector, yolox_grid
from engines.errors import UserError

IN_W, IN_H = 96, 64
COCO_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_sample"


def constant_head_onnx(path: Path, raw: np.ndarray) -> Path:
    """An ONNX model mapping a [1,3,64,96] image to `raw` (+ 0 x the image mean, so the graph
    really consumes its input): a detector whose raw output the test chooses."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Reshape", ["nothing", "one_shape"], ["nothing3"]),
        helper.make_node("Add", ["raw", "nothing3"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "constant_head",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, IN_H, IN_W])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(raw.shape))],
        initializer=[numpy_helper.from_array(raw.astype(np.float32), "raw"),
                     numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
                     numpy_helper.from_array(np.array([1, 1, 1], np.int64), "one_shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def yolox_raw(num_classes=80):
    cells, strides = yolox_grid((IN_W, IN_H))
    raw = np.zeros((1, len(cells), 5 + num_classes), np.float32)
    raw[0, :, 2:4] = -5.0                      # tiny boxes everywhere, scores 0

    def put(cell_xy, stride, offset, wh, obj, cls_scores):
        i = np.flatnonzero((cells == cell_xy).all(1) & (strides[:, 0] == stride))[0]
        raw[0, i, :2] = offset
        raw[0, i, 2:4] = np.log(np.asarray(wh, np.float32) / stride)
        raw[0, i, 4] = obj
        raw[0, i, 5:5 + len(cls_scores)] = cls_scores
        return i

    put((3, 2), 8, (0.5, 0.5), (32, 48), 0.9, [0.8])         # centre (28,20): score 0.72
    put((1, 1), 16, (0.25, 0.25), (30, 44), 0.9, [0.5])      # same person, lower: NMS removes it
    put((1, 0), 32, (0.5, 0.5), (40, 40), 0.9, [0.01, 0.95])  # a bicycle, not a person
    put((10, 5), 8, (0.0, 0.0), (16, 20), 0.5, [0.9])        # centre (80,40): score 0.45
    return raw


def test_yolox_grid_decode_letterbox_and_nms(tmp_path):
    det = YoloxDetector(constant_head_onnx(tmp_path / "yolox.onnx", yolox_raw()), score_thresh=0.3)
    assert det.input_size == (IN_W, IN_H)
    frame = np.zeros((128, 150, 3), np.uint8)                # ratio 0.5, padding right/bottom
    boxes = det.detect(frame)
    assert boxes.dtype == np.float32 and boxes.shape == (2, 5)
    np.testing.assert_allclose(boxes[0], [(28 - 16) * 2, 0, (28 + 16) * 2,
                                          (20 + 24) * 2, 0.72], rtol=1e-5)
    np.testing.assert_allclose(boxes[1], [144, 60, 150, 100, 0.45], rtol=1e-5)   # clamped to frame
    assert len(det.detect_batch([frame, frame])) == 2


def test_yolox_already_decoded_export(tmp_path):
    raw = np.zeros((1, 5, 85), np.float32)
    raw[0, 0, :6] = [50, 30, 20, 40, 1.0, 0.9]
    det = YoloxDetector(constant_head_onnx(tmp_path / "dec.onnx", raw), grid_decoded=True)
    np.testing.assert_allclose(det.detect(np.zeros((64, 96, 3), np.uint8)), [[40, 10, 60, 50, 0.9]], rtol=1e-6)


def test_ultralytics_layout_centred_letterbox(tmp_path):
    raw = np.zeros((1, 84, 200), np.float32)
    raw[0, :5, 0] = [50, 30, 20, 40, 0.9]                  # person
    raw[0, :4, 1] = [20, 20, 10, 10]
    raw[0, 4 + 2, 1] = 0.99                                # a car
    path = constant_head_onnx(tmp_path / "yolo11.onnx", raw)
    det = load_detector(str(path))                          # told apart by the output shape
    assert isinstance(det, UltralyticsDetector)
    frame = np.zeros((128, 100, 3), np.uint8)              # ratio 0.5 -> 50x64, 23 px pad left
    np.testing.assert_allclose(det.detect(frame), [[34, 20, 74, 100, 0.9]], rtol=1e-6)
    assert isinstance(load_detector(f"yolox:{path}"), YoloxDetector)


def test_preprocessing_conventions(tmp_path):
    frame = np.zeros((32, 96, 3), np.uint8)
    frame[..., 0] = 200                                     # blue in BGR
    yolox_img, box = letterbox(frame, (IN_W, IN_H), centred=False)
    assert (yolox_img[:32] == frame).all() and (yolox_img[32:] == 114).all()
    centred, cbox = letterbox(frame, (IN_W, IN_H), centred=True)
    assert (centred[16:48] == frame).all() and (centred[:16] == 114).all() and cbox.pad[1] == 16
    ultra = UltralyticsDetector(constant_head_onnx(tmp_path / "u.onnx", np.zeros((1, 84, 200), np.float32)))
    x = ultra.preprocess(centred)
    assert x.shape == (3, IN_H, IN_W) and x[2, 20, 0] == pytest.approx(200 / 255) and x[0, 20, 0] == 0
    yolox = YoloxDetector(constant_head_onnx(tmp_path / "y.onnx", yolox_raw()))
    assert yolox.preprocess(yolox_img)[0, 0, 0] == 200.0    # BGR kept, no scaling


def test_wrong_output_shape_and_bad_frames_are_user_errors(tmp_path):
    det = YoloxDetector(constant_head_onnx(tmp_path / "bad.onnx", np.zeros((1, 126, 3), np.float32)))
    with pytest.raises(UserError, match="not YOLOX"):
        det.detect(np.zeros((64, 96, 3), np.uint8))
    wrong_anchors = YoloxDetector(constant_head_onnx(tmp_path / "w.onnx", np.zeros((1, 100, 85), np.float32)))
    with pytest.raises(UserError, match="anchors"):
        wrong_anchors.detect(np.zeros((64, 96, 3), np.uint8))
    ultra = UltralyticsDetector(constant_head_onnx(tmp_path / "u.onnx", np.zeros((1, 300, 84), np.float32)))
    with pytest.raises(UserError, match="Ultralytics"):
        ultra.detect(np.zeros((64, 96, 3), np.uint8))
    for frame in (np.zeros((64, 96), np.uint8), np.zeros((64, 96, 4), np.uint8),
                  np.zeros((64, 96, 3), np.float32), np.zeros((0, 96, 3), np.uint8), "frame.jpg"):
        with pytest.raises(UserError):
            det.detect(frame)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(UserError):
        YoloxDetector(tmp_path / "junk.onnx")
    with pytest.raises(UserError, match="not a detector.*yolox-nano.*centernet, hog"):
        load_detector(str(tmp_path / "missing.onnx"))


def test_nms_keeps_best_of_overlaps():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    keep = nms(boxes, np.array([0.5, 0.9, 0.8, 0.1]), 0.5)
    np.testing.assert_array_equal(keep, [1, 2])
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


@pytest.mark.skipif(not COCO_SAMPLE.is_dir(), reason="../shared/data/coco_sample not present")
def test_hog_on_real_photos():
    detector, found = HogDetector(), 0
    for image_path in sorted(COCO_SAMPLE.rglob("*.jpg"))[:4]:
        frame = cv2.imread(str(image_path))
        boxes = detector.detect(frame)
        h, w = frame.shape[:2]
        assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 5
        assert np.isfinite(boxes).all()
        assert ((boxes[:, 0] >= 0) & (boxes[:, 2] <= w) & (boxes[:, 1] >= 0) & (boxes[:, 3] <= h)).all()
        assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()
        assert ((boxes[:, 4] >= 0.5) & (boxes[:, 4] <= 1)).all() and (np.diff(boxes[:, 4]) <= 0).all()
        found += len(boxes)
    assert found > 0                                        # the COCO sample shows people


def test_hog_finds_nothing_in_a_blank_frame():
    assert HogDetector().detect(np.full((240, 320, 3), 128, np.uint8)).shape == (0, 5)


def test_centernet_targets_round_trip_through_decode():
    from engines.detectors.centernet import decode_centernet
    from trainer.targets import encode_centernet_targets

    boxes = np.array([[10.5, 20.25, 70.5, 180.75], [200, 40, 260, 200], [100, 100, 130, 170],
                      [-40, 10, -10, 60]], np.float32)          # the last one's centre is off the map
    heat, size, offset, mask = encode_centernet_targets(boxes, (320, 224))
    assert heat.shape == (1, 56, 80) and mask.sum() == 3 and heat.max() == 1.0
    decoded = decode_centernet(heat[None], size[None], offset[None])[0]
    assert decoded.shape == (3, 5) and (decoded[:, 4] == 1).all()
    order = np.argsort(decoded[:, 0])
    np.testing.assert_allclose(decoded[order, :4], boxes[[0, 2, 1]], atol=1e-4)


def test_centernet_network_predicts_at_stride_4():
    import torch

    from engines.detectors.centernet import CenterNetNet

    heat, size, offset = CenterNetNet()(torch.zeros(2, 3, 96, 160))
    assert heat.shape == (2, 1, 24, 40) and size.shape == offset.shape == (2, 2, 24, 40)


def test_centernet_detector_maps_its_peaks_back_to_the_frame():
    import torch

    from engines.detectors.centernet import CenterNetDetector

    class ChosenMaps(torch.nn.Module):
        """Two peaks on the 40x24 stride-4 maps of a 160x96 input; records the input it gets."""

        def forward(self, x):
            self.seen = x
            heat = torch.full((len(x), 1, 24, 40), -10.0)
            size, offset = torch.zeros(len(x), 2, 24, 40), torch.zeros(len(x), 2, 24, 40)
            heat[:, 0, 5, 10] = 2.0
            size[:, :, 5, 10] = torch.tensor([40.0, 32.0])
            offset[:, :, 5, 10] = torch.tensor([0.5, 0.25])
            heat[:, 0, 20, 30] = 0.0
            size[:, :, 20, 30] = 16.0
            return heat, size, offset

    net = ChosenMaps()
    frame = np.empty((150, 200, 3), np.uint8)
    frame[:] = (30, 120, 200)                               # BGR
    boxes = CenterNetDetector(net, (160, 96), backend="torch", score_thresh=0.3).detect(frame)
    # letterbox ratio min(160/200, 96/150) = 0.64, padding right; cell (10, 5) + offset (0.5, 0.25)
    # is input (42, 21), a 40x32 box [22, 5, 62, 37]: / 0.64 in the frame. Cell (30, 20): input
    # (120, 80), 16x16 -> [112, 72, 128, 88] / 0.64. Scores: sigmoid(2), sigmoid(0).
    np.testing.assert_allclose(boxes, [[34.375, 7.8125, 96.875, 57.8125, 1 / (1 + np.exp(-2))],
                                       [175, 112.5, 200, 137.5, 0.5]], rtol=1e-5)
    x = net.seen[0].numpy()
    np.testing.assert_allclose(x[:, 0, 0], np.array([200, 120, 30]) / 255, atol=1e-6)   # RGB, / 255
    np.testing.assert_allclose(x[:, 0, 130], 114 / 255, atol=1e-6)                     # grey padding


def test_bundled_centernet_runs_the_same_on_onnxruntime_and_torch():
    """The CPU default runs the bundled detector through ONNX Runtime: same boxes as torch."""
    import cv2

    from engines.detectors.centernet import load_centernet
    from tracker.sources import DEMO_CLIP

    ok, frame = cv2.VideoCapture(str(DEMO_CLIP)).read()
    assert ok, "bundled demo clip unreadable"
    fast, plain = load_centernet(), load_centernet(backend="torch")
    assert fast.network.name == "onnxruntime" and plain.network.name == "torch"
    # its idle threads must not spin: the pose network runs next on the same cores
    options = fast.network.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    boxes, expected = fast.detect(frame), plain.detect(frame)
    assert len(expected) >= 2 and boxes.shape == expected.shape
    np.testing.assert_allclose(boxes, expected, atol=0.05)

"""The one rule for a usable box, IoU and the keypoint extent (engines.common.boxes)."""

import numpy as np

from engines.common.boxes import box_iou, keypoint_extent, usable_boxes


def test_usable_boxes_are_finite_and_a_pixel_wide_once_clamped():
    boxes = np.array([[-10, -5, 50, 60, 0.9],       # partly outside: clamped
                      [np.nan, 0, 10, 10, 0.8],      # NaN: dropped
                      [5, 5, 5.5, 40, 0.7],          # half a pixel wide: dropped
                      [700, 10, 800, 50, 0.6],       # fully outside: zero width once clamped
                      [10, 10, np.inf, 40, 0.5],     # inf: dropped
                      [600, 400, 660, 500, 0.4],     # clamped to the bottom-right corner
                      [0, 0, 1, 1, 0.3]],            # one pixel: the smallest usable box
                     np.float32)
    clean, kept = usable_boxes(boxes, (640, 480))
    np.testing.assert_array_equal(kept, [0, 5, 6])
    np.testing.assert_array_equal(clean, np.array([[0, 0, 50, 60, 0.9], [600, 400, 640, 480, 0.4],
                                                   [0, 0, 1, 1, 0.3]], np.float32))
    assert clean.dtype == np.float32 and kept.dtype == np.int64
    unclamped, kept = usable_boxes(boxes)          # no frame: only finiteness and size count
    np.testing.assert_array_equal(kept, [0, 3, 5, 6])
    np.testing.assert_array_equal(unclamped[0], boxes[0])
    empty, none = usable_boxes(np.zeros((0, 4)), (640, 480))
    assert empty.shape == (0, 4) and none.shape == (0,)


def test_box_iou_of_known_overlaps():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 1, 0], [0, 0, 0]])


def test_keypoint_extent_covers_the_confident_joints_only():
    keypoints = np.zeros((3, 4, 3), np.float32)
    keypoints[0] = [[10, 20, 0.9], [30, 5, 0.5], [100, 100, 0.1], [0, 0, np.nan]]
    keypoints[1, :, 2] = 0.1                        # nobody confident: zeros, count 0
    keypoints[2] = [[7, 8, 0.3], [7, 8, 0.2], [9, 9, 0.0], [1, 1, 0.0]]
    extent, count = keypoint_extent(keypoints, 0.3)
    np.testing.assert_array_equal(extent, [[10, 5, 30, 20], [0, 0, 0, 0], [7, 8, 7, 8]])
    np.testing.assert_array_equal(count, [2, 0, 1])

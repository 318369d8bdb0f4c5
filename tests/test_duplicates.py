"""tracker.tracking.duplicates: one detection per person, from boxes, keypoints and settings alone."""

import numpy as np
import pytest

from engines.common.boxes import box_iou
from engines.pose.oks import oks_pairs
from engines.pose.schemas import COCO17
from tracker.tracking import TrackerConfig
from tracker.tracking.duplicates import one_detection_per_person, uncontested, unduplicated
from synthetic_people import COCO_TEMPLATE, boxes_from_keypoints

SIGMAS = COCO17.sigmas_array
DEFAULTS = TrackerConfig()
THRESH = DEFAULTS.joint_score_thresh


def pose_at(cx, cy, height=200.0, score=0.9):
    xy = COCO_TEMPLATE * height + [cx, cy]
    return np.concatenate([xy, np.full((17, 1), score)], axis=1).astype(np.float32)


def box_of(pose, score):
    return boxes_from_keypoints(np.array([pose], np.float32), np.array([score]))[0]


def overlap(boxes):
    return box_iou(boxes[:, :4], boxes[:, :4])


def kept_rows(boxes, keypoints, contested_oks=DEFAULTS.contested_oks, duplicate_oks=DEFAULTS.duplicate_oks):
    return one_detection_per_person(np.asarray(boxes, np.float32), np.asarray(keypoints, np.float32), SIGMAS,
                                    contested_oks=contested_oks, duplicate_oks=duplicate_oks,
                                    joint_score_thresh=THRESH).tolist()


def test_a_pose_found_twice_keeps_the_box_that_fits_it():
    front, beside = pose_at(300, 300), pose_at(340, 300)   # someone overlapping, with their own pose
    fitting = box_of(front, 0.6)
    wider = fitting + np.array([-60, -20, 60, 20, 0.3], np.float32)   # a second box led to the same pose
    boxes = np.stack([wider, fitting, box_of(beside, 0.9)])
    keypoints = np.array([front, front, beside])
    # the wider box scores higher, yet the box that fits the pose stays
    assert unduplicated(boxes, keypoints, overlap(boxes), SIGMAS, DEFAULTS.duplicate_oks, THRESH).tolist() == \
        [False, True, True]
    assert kept_rows(boxes, keypoints, duplicate_oks=1.0) == [0, 1, 2]   # the rule off


def test_a_box_over_a_better_one_stays_only_with_someone_elses_pose():
    front = pose_at(300, 300)
    front_box = box_of(front, 0.9)
    behind_box = front_box + np.array([12, -4, 12, -4, -0.2], np.float32)   # IoU 0.71 with the front box
    boxes = np.stack([front_box, behind_box])
    assert overlap(boxes)[0, 1] > 0.5
    behind = pose_at(350, 296, height=190.0)                                # their own pose (OKS 0.05)
    assert uncontested(boxes, np.array([front, behind]), overlap(boxes), SIGMAS, DEFAULTS.contested_oks,
                       THRESH).tolist() == [True, True]
    copied = np.array([front, front + [2, 1, 0]])                           # the front person drawn again
    assert uncontested(boxes, copied, overlap(boxes), SIGMAS, DEFAULTS.contested_oks, THRESH).tolist() == \
        [True, False]
    assert kept_rows(boxes, copied, contested_oks=1.0, duplicate_oks=1.0) == [0, 1]


def test_boxes_that_overlap_little_are_never_contested():
    a, b = pose_at(300, 300), pose_at(330, 300)   # box IoU 0.44
    boxes = np.stack([box_of(a, 0.9), box_of(b, 0.5)])
    assert 0 < overlap(boxes)[0, 1] <= 0.5
    # even with the same pose (an OKS of 1 with every firm box): NMS would keep both
    assert uncontested(boxes, np.array([a, a]), overlap(boxes), SIGMAS, 0.0, THRESH).tolist() == [True, True]


def test_a_box_inside_another_with_that_persons_pose_shifted_is_one_person():
    # a weak box on part of someone (the bundled detector's legs box on the demo clip, IoU 0.41)
    # makes the pose network draw that person again, shifted: no NMS and no plain duplicate rule removes it
    front = pose_at(300, 300)
    front_box = box_of(front, 0.9)
    x1, y1, x2, y2, _ = front_box
    part_box = np.array([x1 + 0.15 * (x2 - x1), (y1 + y2) / 2, x2 - 0.15 * (x2 - x1), y2, 0.7], np.float32)
    boxes = np.stack([front_box, part_box])
    shifted = front + [0, 12, 0]
    part_area = (part_box[2] - part_box[0]) * (part_box[3] - part_box[1])
    oks = oks_pairs(shifted[None], front[None], np.array([part_area]), SIGMAS)[0]
    assert 0.4 < oks < DEFAULTS.duplicate_oks   # one person, yet below the duplicate rule's bar
    assert overlap(boxes)[0, 1] < 0.5           # and not contested
    assert unduplicated(boxes, np.array([front, shifted]), overlap(boxes), SIGMAS, DEFAULTS.duplicate_oks,
                        THRESH).tolist() == [True, False]
    # the same two boxes side by side (no nesting) need the full duplicate_oks
    beside = part_box + np.array([400, 0, 400, 0, 0], np.float32)
    apart = np.stack([front_box, beside])
    assert unduplicated(apart, np.array([front, shifted]), overlap(apart), SIGMAS, DEFAULTS.duplicate_oks,
                        THRESH).tolist() == [True, True]
    # someone else's pose in that box (a small person behind) stays
    other = pose_at(300, 420, height=90.0)
    assert unduplicated(boxes, np.array([front, other]), overlap(boxes), SIGMAS, DEFAULTS.duplicate_oks,
                        THRESH).tolist() == [True, True]


def test_the_rules_run_in_turn_and_give_the_rows_kept_in_their_order():
    left, right = pose_at(200, 300), pose_at(700, 300)
    left_box, right_box = box_of(left, 0.9), box_of(right, 0.8)
    contested = left_box + np.array([12, -4, 12, -4, -0.2], np.float32)       # over the left box, its pose
    wider = right_box + np.array([-60, -20, 60, 20, 0.1], np.float32)         # around the right one, its pose
    boxes = np.stack([contested, left_box, wider, right_box])
    keypoints = np.array([left + [2, 1, 0], left, right, right])
    assert kept_rows(boxes, keypoints) == [1, 3]
    assert kept_rows(boxes, keypoints, duplicate_oks=1.0) == [1, 2, 3]      # contested rule only
    assert kept_rows(boxes, keypoints, contested_oks=1.0) == [1, 3]         # the duplicate rule alone also takes it
    assert kept_rows(boxes, keypoints, contested_oks=1.0, duplicate_oks=1.0) == [0, 1, 2, 3]


@pytest.mark.parametrize("count", [0, 1])
def test_no_or_one_detection_is_kept_as_it_is(count):
    boxes = np.stack([box_of(pose_at(300, 300), 0.9)])[:count]
    keypoints = np.array([pose_at(300, 300)])[:count]
    assert kept_rows(boxes, keypoints) == list(range(count))

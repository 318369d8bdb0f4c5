"""Re-identification: part colours read from real drawn frames, and ids given back to people who
return within reid_seconds, and only to them."""

import cv2
import numpy as np
import pytest

from engines.pose.schemas import COCO17
from synthetic_people import COCO_TEMPLATE, boxes_from_keypoints
from tracker.tracking import PoseTracker, TrackerConfig
from tracker.tracking.appearance import PARTS, AppearanceSampler, appearance_distance, blend_appearance

FPS = 25
# published CIE Lab (D65) of the sRGB primaries and of mid grey
LAB = {"red": (53.24, 80.09, 67.20), "blue": (32.30, 79.19, -107.86), "grey": (53.59, 0.0, 0.0)}
BGR = {"red": (0, 0, 255), "blue": (255, 0, 0), "grey": (128, 128, 128), "green": (0, 160, 0),
       "yellow": (0, 220, 220)}


def pose_at(cx, cy, height=200.0):
    xy = COCO_TEMPLATE * height + [cx, cy]
    return np.concatenate([xy, np.full((17, 1), 0.9)], axis=1).astype(np.float32)


def draw_person(image, pose, shirt, trousers):
    """Thick limbs along the skeleton: the torso and arms in `shirt`, the legs in `trousers`."""
    j = {name: tuple(int(v) for v in pose[COCO17.index(name), :2]) for name in COCO17.joints}
    torso = np.array([j["left_shoulder"], j["right_shoulder"], j["right_hip"], j["left_hip"]], np.int32)
    cv2.fillPoly(image, [torso], BGR[shirt])
    for side in ("left", "right"):
        cv2.line(image, j[f"{side}_shoulder"], j[f"{side}_elbow"], BGR[shirt], 14)
        cv2.line(image, j[f"{side}_elbow"], j[f"{side}_wrist"], BGR[shirt], 12)
        cv2.line(image, j[f"{side}_hip"], j[f"{side}_knee"], BGR[trousers], 16)
        cv2.line(image, j[f"{side}_knee"], j[f"{side}_ankle"], BGR[trousers], 14)


def frame_of(people):
    """A 1280x720 grey frame with `people` [(pose, shirt, trousers)] drawn, and their detections."""
    image = np.full((720, 1280, 3), 90, np.uint8)
    for pose, shirt, trousers in people:
        draw_person(image, pose, shirt, trousers)
    poses = np.array([p for p, _, _ in people], np.float32).reshape(-1, 17, 3)
    return image, boxes_from_keypoints(poses, np.full(len(poses), 0.9)), poses


def test_part_colours_are_read_from_the_parts_the_keypoints_outline():
    image, _, poses = frame_of([(pose_at(300, 360), "red", "blue"), (pose_at(900, 360), "grey", "red")])
    colours = AppearanceSampler("coco17", 0.2)(image, poses)
    torso, thigh = list(PARTS).index("torso"), list(PARTS).index("thigh")
    np.testing.assert_allclose(colours[0, torso], LAB["red"], atol=1.5)
    np.testing.assert_allclose(colours[0, thigh], LAB["blue"], atol=1.5)
    np.testing.assert_allclose(colours[1, torso], LAB["grey"], atol=1.5)
    poses[0, COCO17.index("left_knee"), 2] = poses[0, COCO17.index("right_knee"), 2] = 0.05
    unseen = AppearanceSampler("coco17", 0.2)(image, poses)
    assert np.isnan(unseen[0, thigh]).all() and np.isnan(unseen[0, list(PARTS).index("shin")]).all()
    assert AppearanceSampler("mpii16", 0.2).usable and AppearanceSampler("coco17", 0.2)(image, poses[:0]).shape == (0, 5, 3)


def test_distance_weighs_lightness_half_and_needs_two_common_parts():
    a = np.full((1, 5, 3), np.nan, np.float32)
    a[0, :2] = [[50, 0, 0], [50, 10, 0]]
    b = a.copy()
    b[0, 0] = [58, 0, 0]        # lightness 8 apart: counts 4
    b[0, 1] = [50, 10, 6]       # b* 6 apart: counts 6
    assert appearance_distance(a, b)[0, 0] == pytest.approx(5.0)
    b[0, 1] = np.nan            # one common part is not enough
    assert appearance_distance(a, b)[0, 0] == np.inf


def test_running_colours_average_the_first_samples_then_follow_slowly():
    old = np.full((1, 5, 3), np.nan, np.float32)
    counts = np.zeros((1, 5), np.int32)
    for value in (10.0, 20.0, 30.0):
        new = np.full((1, 5, 3), value, np.float32)
        new[0, 4] = np.nan
        old, counts = blend_appearance(old, new, counts, momentum=0.1)
    np.testing.assert_allclose(old[0, 0], 20.0)      # the mean of three samples
    assert np.isnan(old[0, 4]).all() and counts[0].tolist() == [3, 3, 3, 3, 0]


def run(config, script):
    """Feed `script` (per frame: list of (pose, shirt, trousers)) to a tracker; ids per frame."""
    tracker = PoseTracker(config)
    ids = []
    for f, people in enumerate(script):
        image, boxes, poses = frame_of(people)
        ids.append(tracker.update(boxes, poses, timestamp=f / FPS, image=image).ids.tolist())
    return ids


def leave_and_return(away_s, shirt_back="red", trousers_back="blue", height_back=190.0):
    """A person walks right for 2 s, is gone `away_s` seconds, comes back elsewhere walking left."""
    there = [[(pose_at(200 + 4 * f, 360), "red", "blue")] for f in range(2 * FPS)]
    gone = [[] for _ in range(int(away_s * FPS))]
    back = [[(pose_at(1000 - 4 * f, 380, height_back), shirt_back, trousers_back)] for f in range(FPS)]
    return there + gone + back


def test_a_person_who_leaves_and_returns_within_reid_seconds_gets_the_old_id():
    ids = run(TrackerConfig(reid_seconds=5.0), leave_and_return(away_s=3.0))   # 75 frames > lost_buffer 30
    assert {i for frame in ids for i in frame} == {1}
    assert ids[-1] == [1]


def test_no_old_id_after_reid_seconds_or_for_other_clothes_or_with_reid_off():
    assert run(TrackerConfig(reid_seconds=5.0), leave_and_return(away_s=6.0))[-1] == [2]
    assert run(TrackerConfig(reid_seconds=5.0), leave_and_return(3.0, "green", "yellow"))[-1] == [2]
    assert run(TrackerConfig(reid_seconds=0.0), leave_and_return(away_s=3.0))[-1] == [2]
    # the same clothes on someone of under half the height: another person (seen far off)
    assert run(TrackerConfig(reid_seconds=5.0), leave_and_return(3.0, height_back=90.0))[-1] == [2]
    assert run(TrackerConfig(reid_seconds=5.0), leave_and_return(3.0, height_back=110.0))[-1] == [1]


def test_a_lost_track_hands_its_id_to_the_same_person_reappearing_far_away():
    # gone 0.6 s (within lost_buffer: the track is only lost), back 700 px away: motion cannot
    # recover it, clothes can; the lost track ends instead of holding the id twice
    script = leave_and_return(away_s=0.6)
    tracker = PoseTracker(TrackerConfig(output_coast_frames=1000))
    for f, people in enumerate(script):
        image, boxes, poses = frame_of(people)
        out = tracker.update(boxes, poses, timestamp=f / FPS, image=image)
    assert out.ids.tolist() == [1] and tracker.num_live_tracks == 1


def test_a_track_confirmed_at_birth_takes_a_lost_id_in_the_frame_it_starts():
    # with min_hits 1 a newcomer is confirmed (and re-identified) as it starts: the lost track
    # whose id it takes leaves the table in that same frame
    script = leave_and_return(away_s=0.6)
    tracker = PoseTracker(TrackerConfig(min_hits=1, output_coast_frames=1000))
    for f, people in enumerate(script[:2 * FPS + int(0.6 * FPS) + 1]):   # to the first frame back
        image, boxes, poses = frame_of(people)
        out = tracker.update(boxes, poses, timestamp=f / FPS, image=image)
    assert out.ids.tolist() == [1] and tracker.num_live_tracks == 1 and len(tracker.departed) == 0


def test_two_people_seen_together_are_never_merged():
    # twins in the same clothes, side by side: both confirmed, two ids, then one leaves and the
    # other stays; the one who stayed keeps their id, nobody takes the other's
    script = [[(pose_at(300, 360), "red", "blue"), (pose_at(900, 360), "red", "blue")] for _ in range(FPS)]
    script += [[(pose_at(900, 360), "red", "blue")] for _ in range(3 * FPS)]
    tracker = PoseTracker(TrackerConfig(reid_seconds=5.0))
    for f, people in enumerate(script):
        image, boxes, poses = frame_of(people)
        out = tracker.update(boxes, poses, timestamp=f / FPS, image=image)
        if f == FPS - 1:     # both there: the id of the twin at x = 900, the one who stays
            assert sorted(out.ids.tolist()) == [1, 2]
            stayer = int(out.ids[np.argmin(np.abs(out.keypoints[:, :, 0].mean(axis=1) - 900))])
    assert out.ids.tolist() == [stayer]


def test_a_lost_track_takes_no_one_in_other_clothes_who_comes_in_where_it_left():
    stay = [[(pose_at(600, 360), "red", "blue")] for _ in range(FPS)]
    other = [[(pose_at(600, 360), "green", "yellow")] for _ in range(FPS)]
    # gone half a second (within lost_buffer, so the track is only lost): motion alone would
    # give its id to whoever stands there now; the clothes say it is someone else
    assert run(TrackerConfig(), stay + [[]] * 12 + other)[-1] == [2]
    assert run(TrackerConfig(), stay + [[]] * 12 + stay)[-1] == [1]
    # a detection missed for one frame is bridged by motion alone, whatever the colours read
    assert run(TrackerConfig(), stay + [[]] + other)[-1] == [1]

"""Pose only where the tracker needs it (PoseTracker.pose_needed) and detections without a pose:
which boxes get a pose estimate, and what the tracker does with a box measured alone."""

import numpy as np
import pytest

from tracker.tracking import JointState, PoseTracker, TrackerConfig

J = 17


def person(x: float, y: float = 100.0, height: float = 160.0, score: float = 0.9, swing: float = 0.0):
    """A box (5,) and keypoints (J,3) of a standing person whose left top corner is at (x, y);
    `swing` moves the wrists sideways by that many pixels."""
    rng = np.random.default_rng(0)
    xy = np.stack([rng.uniform(0.2, 0.8, J) * height * 0.5, np.linspace(0.05, 0.95, J) * height], axis=1)
    xy[9:11, 0] += swing
    kpts = np.concatenate([xy + [x, y], np.full((J, 1), 0.9)], axis=1)
    return np.array([x, y, x + height * 0.5, y + height, score], np.float32), kpts.astype(np.float32)


def frame(*people):
    boxes, kpts = zip(*people)
    return np.stack(boxes), np.stack(kpts)


def tracked(config: TrackerConfig, frames: int = 3, **where) -> PoseTracker:
    """A tracker that has seen one person at x = 100 (and one at x = 400) for `frames` frames."""
    tracker = PoseTracker(config)
    for f in range(frames):
        tracker.update(*frame(person(100, **where), person(400, **where)), timestamp=f / 30)
    return tracker


def test_a_weak_box_that_overlaps_nobody_needs_no_pose_and_the_rest_do():
    tracker = tracked(TrackerConfig(high_score=0.5, low_score=0.1))
    weak_alone, weak_on_someone = person(700, score=0.3)[0], person(120, score=0.3)[0]
    strong_alone = person(1000, score=0.9)[0]
    boxes = np.stack([person(100)[0], weak_alone, weak_on_someone, strong_alone])
    assert tracker.pose_needed(boxes, 3 / 30).tolist() == [True, False, True, True]


def test_without_scheduling_a_tracked_person_is_estimated_every_frame():
    tracker = tracked(TrackerConfig())
    assert tracker.pose_needed(frame(person(100), person(400))[0], 3 / 30).all()


def test_a_still_person_is_estimated_every_n_frames_and_predicted_in_between():
    config = TrackerConfig(pose_refresh_frames=3)
    tracker = tracked(config)
    needed = []
    for f in range(3, 12):
        boxes, kpts = frame(person(100), person(400))
        need = tracker.pose_needed(boxes, f / 30)
        needed.append(need.tolist())
        kpts[~need] = np.nan
        tracker.update(boxes, kpts, timestamp=f / 30)
    assert needed == [[False, False], [False, False], [True, True]] * 3


def test_fast_limbs_are_estimated_sooner():
    config = TrackerConfig(pose_refresh_frames=10, pose_refresh_motion=0.05)
    tracker = PoseTracker(config)
    needed = []
    for f in range(12):   # the wrists of the first person swing 4 px (2.5% of the height) a frame
        boxes, kpts = frame(person(100, swing=4.0 * f), person(400))
        need = tracker.pose_needed(boxes, f / 30) if f > 3 else np.ones(2, bool)
        needed.append(need.tolist())
        kpts[~need] = np.nan
        tracker.update(boxes, kpts, timestamp=f / 30)
    swinging, still = zip(*needed[4:])
    assert sum(swinging) > sum(still) and not any(still)


def test_people_near_each_other_are_always_estimated():
    tracker = PoseTracker(TrackerConfig(pose_refresh_frames=5))
    for f in range(4):
        tracker.update(*frame(person(100), person(160)), timestamp=f / 30)   # boxes overlapping
    assert tracker.pose_needed(frame(person(100), person(160))[0], 4 / 30).all()


def test_a_box_without_a_pose_moves_the_box_and_keeps_the_joints_predicted():
    tracker = tracked(TrackerConfig(pose_refresh_frames=4))
    report = tracker.update(*frame(person(100), person(400)), timestamp=3 / 30)
    order = np.argsort(report.boxes[:, 0])
    before_boxes, before_kpts = report.boxes[order], report.keypoints[order]
    boxes, kpts = frame(person(110), person(400))     # the first person's box moved 10 px right
    kpts[:] = np.nan
    report = tracker.update(boxes, kpts, timestamp=4 / 30)
    first = int(np.argmin(report.boxes[:, 0]))
    assert len(report) == 2 and np.isnan(report.keypoints_raw).all()
    assert (report.joint_states == JointState.PREDICTED).all()
    assert report.boxes[first, 0] - before_boxes[0, 0] > 1.0        # the filtered box followed the detection
    # the joints kept their prediction: a person standing still stays where the last pose put them
    np.testing.assert_allclose(report.keypoints[first, :, :2], before_kpts[0, :, :2], atol=0.05)
    np.testing.assert_allclose(report.keypoints[first, :, 2], 0.9)   # the last estimated scores


def test_a_box_without_a_pose_starts_no_track():
    tracker = PoseTracker(TrackerConfig())
    boxes, kpts = frame(person(100))
    kpts[:] = np.nan
    tracker.update(boxes, kpts, timestamp=0.0)
    assert tracker.num_live_tracks == 0
    tracker.update(*frame(person(100)), timestamp=1 / 30)
    assert tracker.num_live_tracks == 1


@pytest.mark.parametrize("value", [0, -1])
def test_the_refresh_interval_is_at_least_one_frame(value):
    from engines.errors import UserError

    with pytest.raises(UserError, match="pose_refresh_frames"):
        TrackerConfig(pose_refresh_frames=value)

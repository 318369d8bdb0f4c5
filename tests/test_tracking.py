"""tracker.tracking: identities through crossings, gaps and noise; smoothing; bad input."""

import numpy as np
import pytest
from filterpy.common import Q_discrete_white_noise
from filterpy.kalman import KalmanFilter

from engines.errors import UserError
from engines.pose.schemas import COCO17
from tracker.tracking import LOST, REMOVED, TENTATIVE, TRACKED, JointState, PoseTracker, TrackerConfig
from tracker.tracking.kalman import ConstantVelocityBank
from tracker.tracking.lifecycle import next_states
from synthetic_people import COCO_TEMPLATE, boxes_from_keypoints, noisy_detections, synthetic_people


def pose_at(cx, cy, height=200.0, score=0.9):
    xy = COCO_TEMPLATE * height + [cx, cy]
    return np.concatenate([xy, np.full((17, 1), score)], axis=1).astype(np.float32)


def past_first_frame(config: TrackerConfig | None = None) -> PoseTracker:
    """A tracker that has seen one empty frame (at t = -1/30): people of a tracker's first frame
    are confirmed at once, so lifecycle tests start after it."""
    tracker = PoseTracker(config)
    tracker.update(np.zeros((0, 5)), np.zeros((0, 17, 3)), timestamp=-1 / 30)
    return tracker


def detections(poses, det_score=0.9):
    kp = np.array(poses, np.float32).reshape(-1, 17, 3)
    return boxes_from_keypoints(kp, np.full(len(kp), det_score)), kp


def ids_by_person(out, poses):
    """Map each reported track to the scripted person whose pose it is nearest to."""
    mapping = {}
    for r in range(len(out)):
        d = [np.abs(out.keypoints[r, :, :2] - p[:, :2]).mean() for p in poses]
        mapping[int(np.argmin(d))] = int(out.ids[r])
    return mapping


def test_kalman_bank_matches_filterpy():
    rng = np.random.default_rng(0)
    bank = ConstantVelocityBank(np.array([5.0, -3.0]), 4.0, 100.0)
    filters = []
    for x0 in (5.0, -3.0):
        kf = KalmanFilter(dim_x=2, dim_z=1)
        kf.x = np.array([[x0], [0.0]])
        kf.P = np.diag([4.0, 100.0])
        kf.H = np.array([[1.0, 0.0]])
        filters.append(kf)
    for t in range(30):
        dt, q = rng.uniform(0.5, 2.0), rng.uniform(0.1, 2.0)
        z, r = rng.normal(t, 1.0, 2), rng.uniform(0.5, 3.0, 2)
        observed = rng.uniform(size=2) > 0.3
        bank.predict(dt, q)
        bank.update(z, r, observed)
        for k, kf in enumerate(filters):
            kf.F = np.array([[1.0, dt], [0.0, 1.0]])
            kf.Q = Q_discrete_white_noise(2, dt, q)
            kf.predict()
            if observed[k]:
                kf.update(np.array([[z[k]]]), R=np.array([[r[k]]]))
            np.testing.assert_allclose([bank.pos[k], bank.vel[k]], kf.x.ravel(), rtol=1e-9)
            np.testing.assert_allclose([bank.p00[k], bank.p01[k], bank.p11[k]],
                                       [kf.P[0, 0], kf.P[0, 1], kf.P[1, 1]], rtol=1e-9)


def test_crossing_people_keep_their_ids():
    # both people are detected with their own pose right through the crossing, where their poses
    # coincide: the duplicate and contested rules (tested below) are off so that association alone is tested
    tracker = PoseTracker(TrackerConfig(duplicate_oks=1.0, contested_oks=1.0))
    first = None
    for f in range(60):
        poses = [pose_at(100 + 12 * f, 300), pose_at(800 - 12 * f, 310)]  # cross at f ~ 29
        out = tracker.update(*detections(poses), timestamp=f / 30)
        if f >= 2:
            ids = ids_by_person(out, poses)
            assert len(ids) == 2
            first = first or ids
            assert ids == first, f"ids changed at frame {f}"


def test_short_gap_keeps_the_id_and_predicts_through_it():
    tracker = PoseTracker(TrackerConfig(output_coast_frames=2))
    seen = set()
    for f in range(40):
        pose = pose_at(100 + 8 * f, 300)
        if 15 <= f < 20:  # gone for five frames
            out = tracker.update(np.zeros((0, 5)), np.zeros((0, 17, 3)), timestamp=f / 30)
            if f < 17:  # coasting: reported as lost, at the predicted place
                assert out.states.tolist() == [LOST]
                assert np.abs(out.keypoints[0, :, 0] - pose[:, 0]).mean() < 10
                assert np.isnan(out.keypoints_raw).all()
            else:
                assert len(out) == 0
            continue
        out = tracker.update(*detections([pose]), timestamp=f / 30)
        seen.update(out.ids.tolist())
    assert seen == {1}


def test_joint_states_say_observed_predicted_then_hidden():
    wrist = COCO17.index("left_wrist")
    tracker = PoseTracker(TrackerConfig(min_hits=1, joint_coast_frames=3, output_coast_frames=1))
    states = []
    for f in range(12):
        pose = pose_at(100 + 4 * f, 300)
        if 3 <= f < 9:
            pose[wrist, 2] = 0.05          # the wrist goes behind something for six frames
        out = tracker.update(*detections([pose]), timestamp=f / 30)
        states.append(int(out.joint_states[0, wrist]))
        assert (np.delete(out.joint_states[0], wrist) == JointState.OBSERVED).all()
    O, P, H = JointState.OBSERVED, JointState.PREDICTED, JointState.HIDDEN
    assert states == [O, O, O, P, P, P, H, H, H, O, O, O]
    # a missed person, reported while coasting, has every joint predicted
    out = tracker.update(np.zeros((0, 5)), np.zeros((0, 17, 3)), timestamp=12 / 30)
    assert out.states.tolist() == [LOST] and (out.joint_states == P).all()
    # a joint never measured since the track began is hidden at once
    fresh = PoseTracker(TrackerConfig(min_hits=1))
    pose = pose_at(100, 300)
    pose[wrist, 2] = 0.0
    assert fresh.update(*detections([pose])).joint_states[0, wrist] == H


def test_a_predicted_joint_that_drifts_off_its_person_is_hidden():
    wrist = COCO17.index("left_wrist")
    tracker = PoseTracker(TrackerConfig(min_hits=1, joint_coast_frames=100))
    base = pose_at(300, 300)
    box = np.array([[200, 180, 400, 420, 0.9]], np.float32)    # the body's box, held still
    states = []
    for f in range(30):
        pose = base.copy()
        if f < 10:
            pose[wrist, 0] -= 6 * f                         # the wrist swings out, fast
        else:
            pose[wrist, 2] = 0.0                            # then is no longer seen: its prediction runs on
        out = tracker.update(box, pose[None], timestamp=f / 30)
        states.append(int(out.joint_states[0, wrist]))
    # predicted for a while, hidden once the prediction leaves the box by a quarter of its height
    assert states[9] == JointState.OBSERVED and states[10] == JointState.PREDICTED
    assert states[-1] == JointState.HIDDEN and JointState.PREDICTED not in states[states.index(JointState.HIDDEN):]


def test_person_who_stops_while_hidden_is_recovered():
    tracker = PoseTracker()
    ids = set()
    for f in range(40):
        x = 100 + 10 * min(f, 12)  # walks, then stands still from frame 12, hidden for frames 12-21
        if 12 <= f < 22:
            tracker.update(np.zeros((0, 5)), np.zeros((0, 17, 3)), timestamp=f / 30)
            continue
        ids.update(tracker.update(*detections([pose_at(x, 300)]), timestamp=f / 30).ids.tolist())
    assert ids == {1}


def test_isolated_false_detections_never_become_tracks():
    rng = np.random.default_rng(5)
    tracker = PoseTracker()
    confirmed = set()
    for f in range(80):
        real = [pose_at(200 + 3 * f, 300)]
        # from the second frame on: people of the first frame are confirmed at once (test below)
        clutter = [pose_at(*rng.uniform([0, 0], [1280, 720]), height=rng.uniform(60, 250))
                   for _ in range(3 if f else 0)]
        out = tracker.update(*detections(real + clutter), timestamp=f / 30)
        confirmed.update(out.ids.tolist())
    assert confirmed == {1}


def test_people_of_the_first_frame_are_confirmed_at_once():
    tracker = PoseTracker()
    first = tracker.update(*detections([pose_at(200, 300), pose_at(600, 300)]), timestamp=0.0)
    assert sorted(first.ids.tolist()) == [1, 2] and (first.states == TRACKED).all()
    # someone who comes later waits min_hits frames for an id, as before
    for f in range(1, 4):
        out = tracker.update(*detections([pose_at(200, 300), pose_at(600, 300), pose_at(1000, 300)]),
                             timestamp=f / 30)
        assert len(out.ids) == (2 if f < 3 else 3), f


def test_left_right_swap_keeps_id_and_is_corrected():
    tracker = PoseTracker()
    flip = COCO17.flip_permutation()
    for f in range(20):
        pose = pose_at(300 + 4 * f, 300)
        shown = pose[flip] if f == 12 else pose  # the model swaps left and right once
        out = tracker.update(*detections([shown]), timestamp=f / 30)
        if f >= 2:
            assert out.ids.tolist() == [1]
        if f == 12:
            # the tracker un-swapped the labels, so smoothed joints stay on the right side
            assert np.abs(out.keypoints[0, :, 0] - pose[:, 0]).max() < 10


@pytest.mark.parametrize("noise", [0.01, 0.02])  # joint noise std as a fraction of person height
def test_smoothing_halves_jitter_without_adding_error(noise):
    rng = np.random.default_rng(2)
    frames, people = 240, 6
    gt = synthetic_people(people, frames, rng)
    # every person's detection reaches the tracker, as none went through a detector's box NMS
    tracker = PoseTracker(TrackerConfig(contested_oks=1.0))
    raw = np.full((frames, people, 17, 2), np.nan)
    smooth = np.full_like(raw, np.nan)
    for f in range(frames):
        boxes, kp = noisy_detections(gt[f], rng, noise=noise)
        out = tracker.update(boxes, kp, timestamp=f / 30)
        for r in range(len(out)):
            p = np.flatnonzero(np.all(kp[:, :, :2] == out.keypoints_raw[r, :, :2], axis=(1, 2)))
            assert len(p) == 1
            raw[f, p[0]], smooth[f, p[0]] = kp[p[0], :, :2], out.keypoints[r, :, :2]
    assert np.isfinite(smooth[10:]).all()  # every person tracked after warm-up
    s = slice(10, None)

    def jitter(x):
        return np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1).mean()

    def error(x):
        return np.linalg.norm(x - gt[s, ..., :2], axis=-1).mean()

    assert jitter(smooth[s]) <= 0.5 * jitter(raw[s])
    assert error(smooth[s]) <= error(raw[s])


def test_empty_nan_and_bursts_never_crash_or_reuse_ids():
    rng = np.random.default_rng(3)
    tracker = PoseTracker(TrackerConfig(lost_buffer=3))
    ever, previous = set(), set()
    counts = [0, 50, 0, 0, 0, 0, 50, 3, 0, 50, 50, 50, 0]
    for f, n in enumerate(counts):
        centres = rng.uniform([0, 0], [1280, 720], (n, 2)) if f not in (10, 11) else centres[:n]
        boxes, kp = detections([pose_at(x, y, 80) for x, y in centres]) if n else (np.zeros((0, 5)), np.zeros((0, 17, 3)))
        if n:
            kp[rng.uniform(size=kp.shape[:2]) < 0.2] = np.nan  # missing joints
            boxes[0, :4] = np.nan                             # an unusable box
        out = tracker.update(boxes, kp, timestamp=f / 30)
        ids = out.ids.tolist()
        assert len(ids) == len(set(ids))
        assert np.isfinite(out.keypoints).all()
        assert not (set(ids) - previous) & ever, "a new track got an old id"
        ever |= set(ids)
        previous = set(ids)
    assert ever  # the repeated burst (frames 9-11) became confirmed tracks


def test_bad_calls_raise_user_errors():
    tracker = PoseTracker()
    with pytest.raises(UserError, match="keypoints"):
        tracker.update(np.zeros((1, 5)), np.zeros((1, 16, 3)))
    with pytest.raises(UserError, match="boxes"):
        tracker.update(np.zeros((5, 4)), np.zeros((5, 17, 3)))
    tracker.update(np.zeros((0, 5)), np.zeros((0, 17, 3)), timestamp=2.0)
    with pytest.raises(UserError, match="back in time"):
        tracker.update(np.zeros((0, 5)), np.zeros((0, 17, 3)), timestamp=1.0)


def test_trackers_are_independent_per_source():
    a, b = PoseTracker(), PoseTracker()
    for f in range(4):
        out_a = a.update(*detections([pose_at(100 + f, 100)]))
        out_b = b.update(*detections([pose_at(500, 100), pose_at(900, 100)]))
    assert out_a.ids.tolist() == [1] and sorted(out_b.ids.tolist()) == [1, 2]


@pytest.mark.parametrize("state, hit, hits, misses, expected", [
    (TENTATIVE, True, 2, 0, TENTATIVE),   # not yet min_hits (3) in a row
    (TENTATIVE, True, 3, 0, TRACKED),     # confirmed
    (TENTATIVE, False, 2, 1, REMOVED),    # a candidate may not miss
    (TRACKED, True, 9, 0, TRACKED),
    (TRACKED, False, 9, 1, LOST),
    (LOST, False, 9, 5, LOST),            # within lost_buffer (5)
    (LOST, False, 9, 6, REMOVED),         # given up
    (LOST, True, 10, 0, TRACKED),         # recovered
])
def test_every_lifecycle_transition(state, hit, hits, misses, expected):
    new = next_states(np.array([state], np.int8), np.array([hit]), np.array([hits]), np.array([misses]),
                      min_hits=3, lost_buffer=5)
    assert new.tolist() == [expected]


def test_lifecycle_through_the_tracker_ids_are_never_reused():
    """Tentative for min_hits frames, tracked, lost while hidden, recovered under the same id,
    removed after lost_buffer misses; a return after that is a new person with a new id."""
    tracker = past_first_frame(TrackerConfig(lost_buffer=4, output_coast_frames=4))
    seen = []   # (frame, ids, states) reported
    for f in range(25):
        visible = f < 6 or 8 <= f < 10 or f >= 16   # hidden 6-7 (recovered) and 10-15 (removed)
        det = detections([pose_at(300 + 2 * f, 300)]) if visible else (np.zeros((0, 5)), np.zeros((0, 17, 3)))
        out = tracker.update(*det, timestamp=f / 30)
        seen.append((out.ids.tolist(), out.states.tolist()))
        if f == 1:
            assert tracker.num_live_tracks == 1 and tracker.tracks.state.tolist() == [TENTATIVE]
        if f in (13, 14):   # the 5th miss (frame 14) exceeds lost_buffer: the track is gone
            assert tracker.num_live_tracks == (1 if f == 13 else 0)
    assert seen[0] == seen[1] == ([], [])                         # tentative: not reported
    assert seen[2] == ([1], [TRACKED])                            # confirmed at the third hit
    assert seen[6] == seen[7] == ([1], [LOST])                    # coasting while hidden
    assert seen[8] == ([1], [TRACKED])                            # recovered
    assert seen[13] == ([1], [LOST]) and seen[14] == ([], [])     # the 5th miss > lost_buffer: removed
    assert seen[16] == seen[17] == ([], []) and seen[18] == ([2], [TRACKED])   # a new track, a new id


def test_a_tentative_track_that_misses_a_frame_is_dropped():
    tracker = past_first_frame()
    for f, visible in enumerate([True, True, False, True, True, True]):
        det = detections([pose_at(300, 300)]) if visible else (np.zeros((0, 5)), np.zeros((0, 17, 3)))
        out = tracker.update(*det, timestamp=f / 30)
        assert tracker.num_live_tracks == int(visible)
    assert out.ids.tolist() == [1]   # confirmed three hits after it started again


def test_track_table_rows_stay_aligned_through_births_and_removals():
    rng = np.random.default_rng(4)
    tracker = PoseTracker(TrackerConfig(lost_buffer=2, min_hits=2))
    for f in range(30):
        n = int(rng.integers(0, 6))
        det = detections([pose_at(*rng.uniform([100, 100], [1100, 600])) for _ in range(n)]) if n \
            else (np.zeros((0, 5)), np.zeros((0, 17, 3)))
        tracker.update(*det, timestamp=f / 30)
        t = tracker.tracks
        lengths = {len(t.ids), len(t.state), len(t.hits), len(t.since_update), len(t.score), len(t.joint_score),
                   len(t.raw), len(t.filters), len(t.filters.p11)}
        assert lengths == {len(t)}
        assert REMOVED not in t.state.tolist()
        assert (t.ids[t.state != TENTATIVE] > 0).all() and (t.ids[t.state == TENTATIVE] == -1).all()


def test_predicted_people_follow_motion_and_include_tentative_tracks():
    tracker = past_first_frame()
    assert tracker.predicted_people(0.0)[0].shape == (0, 5)
    for f in range(6):   # walks 9 px per frame to the right
        tracker.update(*detections([pose_at(100 + 9 * f, 300)]), timestamp=f / 30)
        if f == 0:       # a tentative track is followed too
            boxes, kpts = tracker.predicted_people(1 / 30)
            assert len(boxes) == 1 and tracker.tracks.state.tolist() == [TENTATIVE]
    before = tracker.tracks.filters.pos.copy()
    boxes, kpts = tracker.predicted_people(6 / 30)
    true_boxes, true_kpts = detections([pose_at(100 + 9 * 6, 300)])
    assert np.abs(kpts[0, :, :2] - true_kpts[0, :, :2]).max() < 2.0        # where the person will be
    assert np.abs(boxes[0, :4] - true_boxes[0, :4]).max() < 2.0
    assert np.abs(kpts[0, :, :2] - true_kpts[0, :, :2] + [9, 0]).max() > 6  # not where it was
    np.testing.assert_allclose(kpts[0, :, 2], 0.9)                          # the last scores
    np.testing.assert_allclose(boxes[0, 4], 0.9)
    assert np.array_equal(tracker.tracks.filters.pos, before)               # nothing changed
    tracker.update(np.zeros((0, 5)), np.zeros((0, 17, 3)), timestamp=6 / 30)
    assert len(tracker.predicted_people(7 / 30)[0]) == 0                    # lost: nothing to follow


def test_a_pose_found_twice_is_one_person_kept_with_the_box_that_fits_it():
    # the rules themselves: test_duplicates.py; here, that the tracker applies them before association
    front = pose_at(300, 300)
    fitting = boxes_from_keypoints(np.array([front], np.float32), np.array([0.6]))[0]
    wider = fitting + np.array([-60, -20, 60, 20, 0.3], np.float32)   # a second box led to the same pose
    beside = pose_at(340, 300)                                         # someone overlapping, own pose
    boxes = np.stack([wider, fitting, boxes_from_keypoints(np.array([beside], np.float32), np.array([0.9]))[0]])
    keypoints = np.array([front, front, beside], np.float32)
    out = PoseTracker().update(boxes, keypoints)
    assert len(out) == 2
    np.testing.assert_allclose(np.sort(out.boxes[:, 4]), [0.6, 0.9])   # the wider copy went, not the fitting box
    kept_all = PoseTracker(TrackerConfig(duplicate_oks=1.0)).update(boxes, keypoints)
    assert len(kept_all) == 3

"""Drawing: stable per-id colours, skeletons where joints are, trails that end with their track."""

import numpy as np

from tracker.render import Renderer, track_colour
from tracker.tracking import TRACKED, JointState, TrackBatch


def batch(ids, offset=0.0, nan_joint=None, joint_states=None):
    n = len(ids)
    kpts = np.zeros((n, 17, 3), np.float32)
    for r in range(n):
        kpts[r, :, 0] = 20 + 40 * r + offset + np.arange(17)
        kpts[r, :, 1] = 10 + 3 * np.arange(17)
        kpts[r, :, 2] = 0.9
    if nan_joint is not None:
        kpts[0, nan_joint] = np.nan
    boxes = np.stack([kpts[..., 0].min(1), kpts[..., 1].min(1), kpts[..., 0].max(1), kpts[..., 1].max(1),
                      np.ones(n)], axis=1).astype(np.float32)
    return TrackBatch(ids=np.asarray(ids, np.int64), boxes=boxes, keypoints=kpts, keypoints_raw=kpts.copy(),
                      states=np.full(n, TRACKED, np.int8), frames_since_update=np.zeros(n, np.int32),
                      joint_states=np.zeros((n, 17), np.int8) if joint_states is None else joint_states)


def test_colours_are_fixed_by_the_id_and_distinct():
    # hue = id x 0.618 (mod 1), saturation 0.85, value 1, worked by hand from the HSV sectors:
    # id 0: hue 0 (red) -> RGB (1, 0.15, 0.15); id 1: hue 0.618 (sector 3, f 0.708) -> RGB (0.15, 0.398, 1)
    assert track_colour(0) == (38, 38, 255)     # BGR
    assert track_colour(1) == (255, 101, 38)
    colours = {track_colour(i) for i in range(1, 21)}
    assert len(colours) == 20


def test_draw_marks_joints_and_boxes_in_place_and_skips_nan_joints():
    renderer = Renderer("coco17")
    image = np.zeros((80, 160, 3), np.uint8)
    tracks = batch([1, 2], nan_joint=3)          # person 0's box is NaN too (it spans the NaN joint)
    out = renderer.draw(image, tracks, {"FPS": 25.0})
    assert out is image
    for person in (0, 1):                         # a white dot on every joint below the overlay text
        for x, y, _ in tracks.keypoints[person, 5:]:
            assert (image[int(y), int(x)] == 255).all(), (person, x, y)
    x1, y1, x2, y2 = tracks.boxes[1, :4].astype(int)          # person 1's box edge, in id 2's colour
    np.testing.assert_allclose(image[30:50, x1], np.tile(track_colour(2), (20, 1)), atol=30)
    assert not image[25:58, 20].any()             # person 0: no box drawn from a NaN box
    assert not image[:4, :4].any()                # nor the NaN joint drawn at the origin


def test_overlay_writes_its_values_in_the_top_left_corner():
    def drawn(overlay):
        return Renderer("coco17").draw(np.zeros((80, 160, 3), np.uint8), batch([]), overlay)

    text = drawn({"FPS": 25.0})
    assert text[:25, :90].any() and not text[25:].any() and not text[:, 90:].any()
    assert (text != drawn({"FPS": 30.0})).any()   # the value is written, not only the label
    assert not drawn(None).any()                  # no people, no overlay: nothing drawn


def test_trails_follow_live_tracks_only():
    renderer = Renderer("coco17", trail_length=3)
    for step in range(5):
        renderer.draw(np.zeros((80, 200, 3), np.uint8), batch([1, 2], offset=2.0 * step))
    assert {k: len(v) for k, v in renderer._trails.items()} == {1: 3, 2: 3}
    renderer.draw(np.zeros((80, 200, 3), np.uint8), batch([2]))
    assert set(renderer._trails) == {2}


def test_observed_joints_are_dots_predicted_ones_rings_hidden_ones_not_drawn():
    # one person, joints far apart on a large canvas so that each mark can be looked at alone
    kpts = np.zeros((1, 17, 3), np.float32)
    kpts[0, :, 0] = 20 + 30 * np.arange(17)
    kpts[0, :, 1] = 40
    kpts[0, :, 2] = 0.9
    states = np.zeros((1, 17), np.int8)
    states[0, 9] = JointState.PREDICTED   # left wrist
    states[0, 10] = JointState.HIDDEN     # right wrist
    tracks = TrackBatch(ids=np.array([1]), boxes=np.full((1, 5), np.nan, np.float32), keypoints=kpts,
                        keypoints_raw=kpts.copy(), states=np.array([TRACKED], np.int8),
                        frames_since_update=np.zeros(1, np.int32), joint_states=states)
    renderer = Renderer("coco17")
    renderer.edges = np.zeros((0, 2), np.int64)   # marks only: bones would cross the other joints
    image = renderer.draw(np.zeros((80, 560, 3), np.uint8), tracks)
    white = image.min(axis=2) > 100   # white marks (anti-aliased edges are dimmer)

    def around(j, r):
        x, y = int(kpts[0, j, 0]), int(kpts[0, j, 1])
        return white[y - r:y + r + 1, x - r:x + r + 1]

    assert around(0, 0).all()                          # observed: a filled dot
    assert not around(9, 0).any() and around(9, 3).any()   # predicted: a ring with an empty middle
    assert not around(10, 4).any()                     # hidden: nothing

"""Jitter and lag of predicted joints against the truth (tracker.evaluate.smoothness), on frames
made by hand: a person walking, predicted late, noisy, or with an identity switch."""

import numpy as np
import pytest

from tracker.evaluate.frames import EvalFrame
from tracker.evaluate.smoothness import MAX_LAG, joint_runs, smoothness_sequence

FRAMES = 30


def walk(t):
    """(15,2) joints of a person walking right, 2 px per frame, with swinging joints."""
    base = np.stack([np.linspace(0, 70, 15), np.linspace(0, 140, 15)], axis=1)
    return base + [100 + 2 * t, 50] + np.sin(0.3 * t + np.arange(15))[:, None] * [3, 1]


def frames(predicted, ids=lambda t: 7):
    out = []
    for t in range(FRAMES):
        truth = walk(t)[None]
        out.append(EvalFrame(gt_xy=truth, gt_has=np.ones((1, 15), bool), gt_head=np.array([40.0]),
                             gt_ids=np.array([1]), pr_xy=predicted(t)[None], pr_has=np.ones((1, 15), bool),
                             pr_score=np.ones((1, 15)), pr_ids=np.array([ids(t)])))
    return out


def test_a_perfect_prediction_has_no_acceleration_error_and_no_lag():
    result = smoothness_sequence(frames(walk))
    np.testing.assert_allclose(result.acceleration_error(), 0.0, atol=1e-12)
    assert result.lag() == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("late", [1, 2])
def test_a_prediction_that_follows_late_shows_that_lag(late):
    result = smoothness_sequence(frames(lambda t: walk(max(t - late, 0))))
    assert result.lag() == pytest.approx(late, abs=0.15)


def test_jitter_is_the_mean_distance_of_second_differences():
    # +1, -1, +1 ... px in x on every joint: second differences of +-4 px
    result = smoothness_sequence(frames(lambda t: walk(t) + [(-1) ** t, 0]))
    np.testing.assert_allclose(result.acceleration_error(), 4.0)


def test_an_identity_switch_cuts_the_run():
    runs = joint_runs(frames(walk, ids=lambda t: 7 if t < 10 else 8))
    assert sorted(len(truth) for joint, truth, _ in runs if joint == 0) == [10, 20]
    assert all(len(truth) <= FRAMES for _, truth, _ in runs) and MAX_LAG < 10

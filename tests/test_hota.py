"""tracker.evaluate HOTA (PoseTrack21's keypoint HOTA): hand-worked cases, sequences combined, speed."""

import json
import time
from pathlib import Path

import numpy as np
import pytest

from engines.formats.posetrack import PoseTrackFrame, PoseTrackSequence, load_sequence, make_image_id, write_posetrack18
from tracker.evaluate import evaluate_folders, evaluate_sequences
from tracker.evaluate.cli import main as eval_main
from tracker.evaluate.frames import prepare_labelled_frames
from tracker.evaluate.hota import ALPHAS, hota_sequence

DEMO_GT = Path(__file__).resolve().parents[1] / "tracker/assets/demo_gt"
EARS = [3, 4]
HEAD_SIZE = 30.0  # head box 30 x 40: 0.6 x diagonal 50
# 17 joints spread over a 100 x 200 box; x, y > 0 everywhere (PoseTrack21 ignores joints at x or y <= 0)
TEMPLATE = np.stack([np.linspace(100, 200, 17), np.linspace(100, 300, 17)], axis=1)
FAR = 1000.0  # people this far apart never match (similarity is 0 beyond 0.5 head sizes)


def pose(dx=0.0, dy=0.0):
    kp = np.concatenate([TEMPLATE + [dx, dy], np.ones((17, 1))], axis=1)
    kp[EARS] = 0
    return kp


def frame(index, poses, ids, gt=False, labelled=None):
    n = len(poses)
    kp = np.array(poses, np.float32).reshape(n, 17, 3)
    heads = np.zeros((n, 4), np.float32)
    heads[:, :2] = kp[:, 0, :2]
    heads[:, 2:] = kp[:, 0, :2] + [30, 40]
    return PoseTrackFrame(f"images/seq/{index:06d}.jpg", make_image_id(1, index),
                          (n > 0) if labelled is None else labelled, np.array(ids, np.int64), kp,
                          np.full((n, 17), np.nan if gt else 0.9, np.float32), np.full((n, 4), np.nan, np.float32),
                          heads if gt else np.full((n, 4), np.nan, np.float32))


def seq(frames):
    return PoseTrackSequence("000001_seq", "000001", len(frames), frames)


def hota(gt_frames, pr_frames):
    return evaluate_sequences([("gt.json", seq(gt_frames), "pred.json", seq(pr_frames))]).summary()


def check(summary, hota_, det, ass, loc=None):
    """Every joint and the Total carry the same expected values (x100; keypoints are float32 in files)."""
    expected = {"HOTA": hota_, "DetA": det, "AssA": ass} | ({} if loc is None else {"LocA": loc})
    for key, value in expected.items():
        assert summary[key]["Total"] == pytest.approx(100 * value, abs=1e-4), key
        joints = np.array([v[key] for v in summary["per_joint"].values()])
        np.testing.assert_allclose(joints, 100 * value, atol=1e-4, err_msg=key)


def test_perfect_tracking_is_100_whatever_the_ids():
    a, b = pose(), pose(FAR)
    gt = [frame(i, [a, b], [1, 2], gt=True) for i in range(5)]
    pr = [frame(i, [b, a], [7, 3]) for i in range(5)]
    check(hota(gt, pr), 1, 1, 1, loc=1)


def test_one_id_switch_halfway():
    # 1 person, 2 frames, predicted exactly, as id 10 then id 20. Every alpha: TP 2, FN 0, FP 0, DetA 1.
    # A(1,10) = TPA / (TPA + FNA + FPA) = 1 / (1 + 1 + 0) = 1/2, A(1,20) = 1/2 likewise;
    # AssA = (1 x 1/2 + 1 x 1/2) / 2 TPs = 1/2; HOTA = sqrt(1 x 1/2).
    gt = [frame(i, [pose()], [1], gt=True) for i in range(2)]
    pr = [frame(0, [pose()], [10]), frame(1, [pose()], [20])]
    check(hota(gt, pr), np.sqrt(0.5), 1, 0.5, loc=1)


def test_all_false_positives_score_0():
    gt = [frame(i, [pose()], [1], gt=True) for i in range(3)]
    pr = [frame(i, [pose(FAR), pose(0, FAR)], [5, 6]) for i in range(3)]
    s = hota(gt, pr)
    check(s, 0, 0, 0, loc=1)  # LocA of no match is 1, as in PoseTrack21 (max(1e-10, 0) / max(1e-10, 0))
    assert s["mAP"]["Total"] == 0


def test_hand_worked_two_people_with_a_miss_a_false_positive_and_a_switch():
    # GT A (id 1) and B (id 2) in 4 frames; predictions land exactly, so every alpha counts alike:
    #   frame 0, 1: 10 on A, 20 on B     frame 2: 10 on A, B missed, 30 far from anyone
    #   frame 3:    20 on A, 40 on B
    # Per joint: TP 7, FN 1, FP 1 -> DetA = 7/9.
    # frames per id: A 4, B 4; 10: 3, 20: 3, 30: 1, 40: 1. Matched pairs (TPA):
    #   3 -> 3/(4+3-3) = 3/4     B-20: 2 -> 2/(4+3-2) = 2/5
    #   1 -> 1/(4+3-1) = 1/6     B-40: 1 -> 1/(4+1-1) = 1/4
    # AssA = (3 x 3/4 + 2 x 2/5 + 1 x 1/6 + 1 x 1/4) / 7 = (52/15) / 7 = 52/105
    # HOTA = sqrt(7/9 x 52/105) = sqrt(52/135) = 0.6206
    a, b = pose(), pose(FAR)
    gt = [frame(i, [a, b], [1, 2], gt=True) for i in range(4)]
    pr = [frame(0, [a, b], [10, 20]), frame(1, [a, b], [10, 20]), frame(2, [a, pose(0, FAR)], [10, 30]),
          frame(3, [a, b], [20, 40])]
    check(hota(gt, pr), np.sqrt(52 / 135), 7 / 9, 52 / 105, loc=1)


def test_localisation_error_counts_up_to_its_similarity():
    # every joint 0.190038 head sizes off: similarity 1 - 0.190038 / 0.5001 = 0.62, a match for the 12
    # alphas 0.05 .. 0.60 (HOTA = DetA = AssA = 1 there) and none for the 7 alphas 0.65 .. 0.95 (all 0).
    # LocA: 0.62 where matched, 1 (no match) elsewhere.
    offset = 0.5001 * 0.38 * HEAD_SIZE
    gt = [frame(0, [pose()], [1], gt=True)]
    pr = [frame(0, [pose(offset)], [1])]
    assert len(ALPHAS) == 19
    check(hota(gt, pr), 12 / 19, 12 / 19, 12 / 19, loc=(12 * 0.62 + 7) / 19)


def test_frame_without_predictions_adds_only_its_own_misses():
    # 1 person, 4 frames, nothing predicted in frame 2: TP 3, FN 1 -> DetA 3/4; A(1,10) = 3/(4+3-3) = 3/4.
    # (PoseTrack21's code would add the whole sequence's 4 joints as misses there: DetA 3/7.)
    gt = [frame(i, [pose()], [1], gt=True) for i in range(4)]
    pr = [frame(i, [pose()] if i != 2 else [], [10] if i != 2 else []) for i in range(4)]
    check(hota(gt, pr), 0.75, 0.75, 0.75)


def test_labelled_frames_without_people_count_unlabelled_frames_do_not():
    # frame 1 is labelled with nobody in it, frame 2 unlabelled: the prediction there is a false
    # positive in frame 1 only. TP 1, FP 1 -> DetA 1/2; id 10 has 2 scored frames: A = 1/(1+2-1) = 1/2.
    gt = [frame(0, [pose()], [1], gt=True), frame(1, [], [], gt=True, labelled=True),
          frame(2, [], [], gt=True, labelled=False)]
    pr = [frame(i, [pose()], [10]) for i in range(3)]
    s = hota(gt, pr)
    check(s, 0.5, 0.5, 0.5)
    assert s["mAP"]["Total"] == 100  # poseval scores only frames with people


def test_sequences_combine_weighted_by_true_positives_with_ids_local_to_each():
    # sequence 1: perfect (TP 2, AssA 1); sequence 2: the id switch above (TP 2, AssA 1/2), reusing id 10.
    # AssA = (1 x 2 + 1/2 x 2) / 4 = 3/4, DetA 1, HOTA = sqrt(3/4).
    gt = [frame(i, [pose()], [1], gt=True) for i in range(2)]
    perfect = [frame(i, [pose()], [10]) for i in range(2)]
    switched = [frame(0, [pose()], [10]), frame(1, [pose()], [20])]
    res = evaluate_sequences([("a", seq(gt), "a", seq(perfect)), ("b", seq(gt), "b", seq(switched))])
    check(res.summary(), np.sqrt(0.75), 1, 0.75)


def test_cli_reports_hota_in_table_and_json(tmp_path, capsys):
    gt = [frame(i, [pose()], [1], gt=True) for i in range(2)]
    write_posetrack18(tmp_path / "gt" / "000001_seq.json", seq(gt))
    write_posetrack18(tmp_path / "pr" / "000001_seq.json", seq([frame(0, [pose()], [10]), frame(1, [pose()], [20])]))
    assert eval_main(["--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pr")]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[2:]}
    assert rows["HOTA"][-1] == "70.7" and rows["DetA"][-1] == "100.0" and rows["AssA"][-1] == "50.0"
    assert eval_main(["--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pr"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["AssA"]["Total"] == pytest.approx(50)
    assert out["per_joint"]["nose"]["HOTA"] == pytest.approx(100 * 0.5 ** 0.5)


@pytest.mark.skipif(not (DEMO_GT / "demo.json").is_file(), reason="demo ground truth absent")
def test_demo_ground_truth_against_itself_is_perfect_and_fast():
    gt = load_sequence(DEMO_GT / "demo.json")
    frames = prepare_labelled_frames(gt, gt, "gt", "gt")
    start = time.perf_counter()
    counts = hota_sequence(frames)
    elapsed = time.perf_counter() - start
    assert counts.total() == pytest.approx({"HOTA": 100, "DetA": 100, "AssA": 100, "LocA": 100})
    assert elapsed < 5, f"HOTA of the demo clip took {elapsed:.1f} s"
    assert evaluate_folders(DEMO_GT, DEMO_GT).summary()["HOTA"]["Total"] == pytest.approx(100)

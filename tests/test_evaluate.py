"""tracker.evaluate: hand-worked poseval cases, absent joints, GT against itself, CLI errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines.errors import UserError
from engines.formats.posetrack import PoseTrackFrame, PoseTrackSequence, make_image_id, write_posetrack18
from tracker.evaluate import evaluate_folders, evaluate_sequences
from tracker.evaluate.cli import main as eval_main
from tracker.evaluate.frames import points_in_polygon
from tracker.evaluate.metrics import MotAccumulator, average_precision

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared/data/posetrack18_sample/annotations/val"
EARS = [3, 4]
# a person pose: 17 joints spread over a 100 x 200 box at the origin
TEMPLATE = np.stack([np.linspace(0, 100, 17), np.linspace(0, 200, 17)], axis=1)


def person(dx, dy, score=1.0, shift=None):
    """(17,3) keypoints of the template moved by (dx, dy); `shift` = {joint: (ddx, ddy)} extra offsets."""
    kp = np.concatenate([TEMPLATE + [dx, dy], np.full((17, 1), 1.0)], axis=1)
    for j, d in (shift or {}).items():
        kp[j, :2] += d
    kp[EARS] = 0
    return kp, np.full(17, score)


def frame(index, people, ids, gt=False, regions=()):
    n = len(people)
    kp = np.array([p[0] for p in people], np.float32).reshape(n, 17, 3)
    scores = np.array([p[1] for p in people], np.float32).reshape(n, 17)
    heads = np.tile(np.array([[0, 0, 30, 40]], np.float32), (n, 1))  # diagonal 50 -> head size 30
    heads[:, [0, 2]] += kp[:, :1, 0]
    heads[:, [1, 3]] += kp[:, :1, 1]
    return PoseTrackFrame(f"images/seq/{index:06d}.jpg", make_image_id(1, index), n > 0 if gt else True,
                          np.array(ids, np.int64), kp, np.full((n, 17), np.nan, np.float32) if gt else scores,
                          np.full((n, 4), np.nan, np.float32), heads if gt else np.full((n, 4), np.nan, np.float32),
                          [np.asarray(r, np.float32) for r in regions])


def seq(frames):
    return PoseTrackSequence("000001_seq", "000001", len(frames), frames)


def evaluate(gt_frames, pr_frames):
    return evaluate_sequences([("gt.json", seq(gt_frames), "pred.json", seq(pr_frames))])


def test_ap_hand_worked():
    # g1 at 0, g2 far away. p1 exactly on g1 (0.9); p2 on g2 but its right ankle (poseval joint 0,
    # PoseTrack18 row 16) 20 px off = 0.67 head sizes (0.8); p3 a near-duplicate of g1, 10 px off (0.95).
    gt = [frame(0, [person(0, 0), person(1000, 0)], [1, 2], gt=True)]
    pr = [frame(0, [person(0, 0, 0.9), person(1000, 0, 0.8, {16: (20, 0)}), person(0, 10, 0.95)], [1, 2, 3])]
    res = evaluate(gt, pr)
    # Both p1 and p3 have pck 1 for g1; g1 takes the first (p1), so p3's joints are all false positives.
    # Any joint but the ankle: ranked FP(0.95), TP(0.9), TP(0.8): AP = 0.5*2/3 + 0.5*2/3 = 66.67.
    # Right ankle: FP, TP, FP with 2 positives: AP = 0.5*0.5 = 25.
    expected = np.full(15, 200 / 3)
    expected[0] = 25.0
    np.testing.assert_allclose(res.ap, expected, atol=1e-9)
    groups = res.grouped(res.ap)
    assert groups["Ankl"] == pytest.approx((25 + 200 / 3) / 2)
    assert groups["Total"] == pytest.approx((14 * 200 / 3 + 25) / 15)
    assert groups["Head"] == pytest.approx(200 / 3)


def test_average_precision_matches_hand_values():
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1]), 2) == pytest.approx(100 * (0.5 + 0.5 * 2 / 3))
    assert average_precision(np.zeros(0), np.zeros(0), 3) == 0.0
    assert average_precision(np.zeros(0), np.zeros(0), 0) == 0.0  # poseval: no predictions -> 0, GT or not
    assert np.isnan(average_precision(np.array([0.5]), np.array([0]), 0))


def test_mota_switches_and_idf1_hand_worked():
    a, b = person(0, 0), person(1000, 0)
    gt = [frame(i, [a, b], [1, 2], gt=True) for i in range(4)]
    pr = [frame(0, [a, b], [10, 20]),
          frame(1, [a, b], [20, 10]),                      # ids swapped: 2 switches
          frame(2, [a, b, person(3000, 0)], [10, 20, 30]),  # swapped back (2 switches) + 1 false positive
          frame(3, [], [])]                                 # last labelled frame: left out of MOT
    res = evaluate(gt, pr)
    # per joint: 6 objects, 4 switches, 1 false positive, 0 misses
    np.testing.assert_allclose(res.counts.switches, 4)
    np.testing.assert_allclose(res.counts.false_positives, 1)
    np.testing.assert_allclose(res.counts.misses, 0)
    np.testing.assert_allclose(res.mota, 100 * (1 - 5 / 6))
    np.testing.assert_allclose(res.motp, 100.0)
    # identities: A-10 and B-20 agree in 2 frames each: IDF1 = 2*4 / (6 + 7)
    np.testing.assert_allclose(res.idf1, 100 * 8 / 13)
    assert res.summary()["id_switches"] == 4 * 15


def test_frames_without_predictions_count_as_posevals_fake_pair():
    a, b = person(0, 0), person(1000, 0)
    gt = [frame(i, [a, b], [1, 2], gt=True) for i in range(3)]
    pr = [frame(0, [a, b], [1, 2]), frame(1, [], []), frame(2, [a, b], [1, 2])]
    res = evaluate(gt, pr)
    # frame 0: 2 objects matched; frame 1: poseval scores one fake object (miss) and one fake
    # hypothesis (false positive), not the two real people; frame 2 is the last and is left out.
    np.testing.assert_allclose(res.counts.objects, 3)
    np.testing.assert_allclose(res.mota, 100 * (1 - 2 / 3))


def test_unlabelled_frames_and_ignore_regions():
    a = person(0, 0)
    region = [[-50, -50], [150, -50], [150, 300], [-50, 300]]  # covers person a completely
    gt = [frame(0, [a, person(1000, 0)], [1, 2], gt=True, regions=[region]),
          frame(1, [], [], gt=True)]                       # unlabelled: not evaluated at all
    pr = [frame(0, [a, person(1000, 0), person(0, 5)], [1, 2, 3]),  # p3 lies in the region: removed
          frame(1, [person(500, 0)], [4])]
    res = evaluate(gt, pr)
    np.testing.assert_allclose(res.ap, 100.0)  # no false positives remain
    assert res.num_frames == 1


def test_points_in_polygon_edges_are_outside():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], np.float32)
    pts = np.array([[5, 5], [0, 5], [10, 10], [11, 5], [5, 0]], np.float32)
    assert points_in_polygon(pts, square).tolist() == [True, False, False, False, False]


def test_mot_accumulator_keeps_previous_match_over_closer_one():
    acc = MotAccumulator()
    acc.update([1], [7], [[0.3]])
    acc.update([1], [7, 8], [[0.4, 0.1]])  # 8 is closer, but 1-7 still matches: no switch
    assert (acc.switches, acc.false_positives, acc.matches) == (0, 1, 2)


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared PoseTrack18 sample absent")
def test_ground_truth_against_itself_is_perfect(capsys):
    res = evaluate_folders(SAMPLE, SAMPLE)
    assert res.grouped(res.ap)["Total"] == 100.0
    assert eval_main(["--gt", str(SAMPLE), "--pred", str(SAMPLE), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mAP"]["Total"] == 100.0


def test_bad_inputs_are_one_line_errors(tmp_path):
    gt_dir, pr_dir = tmp_path / "gt", tmp_path / "pr"
    gt_dir.mkdir(), pr_dir.mkdir()
    a = person(0, 0)
    write_posetrack18(gt_dir / "000001_seq.json", seq([frame(0, [a], [1], gt=True), frame(1, [a], [1], gt=True)]))
    with pytest.raises(UserError, match="lacks predictions"):
        evaluate_folders(gt_dir, pr_dir)
    write_posetrack18(pr_dir / "000001_seq.json", seq([frame(0, [a], [1])]))
    with pytest.raises(UserError, match=r"000001_seq.json: 1 frames but the ground truth"):
        evaluate_folders(gt_dir, pr_dir)
    write_posetrack18(pr_dir / "000001_seq.json", seq([frame(0, [a, a], [5, 5]), frame(1, [a], [1])]))
    with pytest.raises(UserError, match="duplicate track ids"):
        evaluate_folders(gt_dir, pr_dir)
    (pr_dir / "000001_seq.json").write_text('{"images": [}')
    proc = subprocess.run([sys.executable, "-m", "tracker", "eval", "--gt", str(gt_dir), "--pred", str(pr_dir)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "000001_seq.json: not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_2017_and_2018_files_evaluate_alike(tmp_path):
    from engines.formats.posetrack import write_posetrack17

    a, b = person(0, 0), person(1000, 0)
    gt = seq([frame(i, [a, b], [1, 2], gt=True) for i in range(3)])
    pr = seq([frame(0, [a, person(1000, 0, 0.8, {16: (20, 0)})], [1, 2]), frame(1, [b, a], [1, 2]),
              frame(2, [a], [1])])
    results = []
    for write in (write_posetrack18, write_posetrack17):
        write(tmp_path / write.__name__ / "gt" / "000001_seq.json", gt)
        write(tmp_path / write.__name__ / "pr" / "000001_seq.json", pr)
        results.append(evaluate_folders(tmp_path / write.__name__ / "gt", tmp_path / write.__name__ / "pr"))
    np.testing.assert_allclose(results[0].ap, results[1].ap)
    np.testing.assert_allclose(results[0].mota, results[1].mota)
    # both people swap ids in frame 1: two switches per joint, except the right ankle, where B's
    # frame-0 ankle was too far off to match, so B had no earlier id to switch from
    assert results[0].counts.switches.tolist() == [1] + [2] * 14


# PoseTrack18 keypoint order, as the files list it
PT18_NAMES = ["nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle"]


def posetrack18_file(path, people_per_frame, gt):
    """Write a PoseTrack 2018 file by hand: people_per_frame[i] = [(track_id, {joint name: (x, y)}), ...]."""
    images, annotations = [], []
    for i, people in enumerate(people_per_frame):
        image_id = 10_000_010_000 + i
        images.append({"id": image_id, "file_name": f"images/val/000001_seq/{i:06d}.jpg", "is_labeled": True,
                       "vid_id": "000001", "nframes": len(people_per_frame)})
        for track_id, joints in people:
            keypoints = []
            for name in PT18_NAMES:
                keypoints += [*joints[name], 1] if name in joints else [0, 0, 0]
            ann = {"image_id": image_id, "track_id": track_id, "keypoints": keypoints}
            if gt:
                ann["bbox_head"] = [100, 100, 30, 40]
            else:
                ann["scores"] = [0.9 if name in joints else 0 for name in PT18_NAMES]
            annotations.append(ann)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "person", "keypoints": PT18_NAMES}]}))


def test_joint_absent_from_gt_and_predictions_counts_as_ap_0_like_poseval(tmp_path, capsys):
    # One person in 2 frames, predicted exactly. head_top is in neither file; nose is predicted but not
    # annotated; the ears are never evaluated. What poseval's computeMetrics gives for that:
    # - AP: head_top 0 (AP starts at 0 and is only computed for joints with predictions), nose NaN
    #   (recall 0/0), the 13 others 100; Total = mean of the non-NaN = 1300/14; Head = mean(0, 100, NaN) = NaN.
    # - MOT (first frame only, the last is left out): head_top and nose have no objects -> MOTA and
    #   recall NaN, left out of the Total (100); no matches -> MOTP 0, kept in the Total: 1300/15;
    #   precision: head_top 0/0 NaN, nose 0/1 = 0: Total 1300/14.
    # - HOTA (PoseTrack21): TP 13 x 2, FP 2 (nose) -> DetA 26/28; AssA = mean over the 15 joints of
    #   (1 x 13 + 0 x 2) = 13/15; HOTA = sqrt(26/28 x 13/15).
    joints = {name: (100.0 + 5 * k, 100.0 + 10 * k) for k, name in enumerate(PT18_NAMES) if name not in
              ("head_top", "left_ear", "right_ear")}
    gt_joints = {k: v for k, v in joints.items() if k != "nose"}
    posetrack18_file(tmp_path / "gt" / "000001_seq.json", [[(1, gt_joints)]] * 2, gt=True)
    posetrack18_file(tmp_path / "pr" / "000001_seq.json", [[(5, joints)]] * 2, gt=False)
    assert eval_main(["--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pr"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    per_joint = out["per_joint"]
    assert per_joint["head_top"]["AP"] == 0 and np.isnan(per_joint["nose"]["AP"])
    assert all(v["AP"] == 100 for k, v in per_joint.items() if k not in ("head_top", "nose"))
    assert out["mAP"]["Total"] == pytest.approx(1300 / 14)
    assert np.isnan(out["mAP"]["Head"]) and out["mAP"]["Shou"] == 100
    assert np.isnan(per_joint["head_top"]["MOTA"]) and np.isnan(per_joint["nose"]["MOTA"])
    assert out["MOTA"]["Total"] == 100
    assert out["MOTP"]["Total"] == pytest.approx(1300 / 15)
    assert out["precision"]["Total"] == pytest.approx(1300 / 14) and out["recall"]["Total"] == 100
    assert out["DetA"]["Total"] == pytest.approx(100 * 26 / 28)
    assert out["AssA"]["Total"] == pytest.approx(100 * 13 / 15)
    assert out["HOTA"]["Total"] == pytest.approx(100 * np.sqrt(26 / 28 * 13 / 15))


@pytest.mark.parametrize("content", ["utf-16", "random"])
def test_non_utf8_prediction_file_is_a_one_line_error(tmp_path, content):
    gt_dir, pr_dir = tmp_path / "gt", tmp_path / "pr"
    a = person(0, 0)
    write_posetrack18(gt_dir / "000001_seq.json", seq([frame(0, [a], [1], gt=True)]))
    write_posetrack18(pr_dir / "000001_seq.json", seq([frame(0, [a], [1])]))
    pred = pr_dir / "000001_seq.json"
    if content == "utf-16":
        pred.write_bytes(pred.read_text(encoding="utf-8").encode("utf-16"))
    else:
        pred.write_bytes(np.random.default_rng(0).bytes(4096))
    proc = subprocess.run([sys.executable, "-m", "tracker", "eval", "--gt", str(gt_dir), "--pred", str(pr_dir)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "000001_seq.json: not UTF-8 text" in lines[0], proc.stderr
    assert ("looks like UTF-16" in lines[0]) == (content == "utf-16")

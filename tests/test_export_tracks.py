"""tracker.export: head-point rule, every writer's file, crash-safety (journals), export -> evaluate round trip."""

import csv
import json

import numpy as np
import pytest

from engines.formats.posetrack import (
    PoseTrackFrame, PoseTrackSequence, load_sequence, make_image_id, write_posetrack17, write_posetrack18,
)
from engines.pose.schemas import COCO17, POSETRACK18
from tracker.evaluate import evaluate_folders
from tracker.export import (
    CsvWriter, JsonlWriter, MotWriter, PoseTrack17Writer, PoseTrack18Writer, to_posetrack18_keypoints,
)
from tracker.export.journal import finish_journal, journal_path
from tracker.tracking import JointState, PoseTracker
from synthetic_people import COCO_TEMPLATE, noisy_detections, synthetic_people

SEQ = "000007_synthetic"


def tracked_frames(num_people=3, num_frames=30, noise=0.005, seed=0):
    """Ground truth (F,P,17,3) and the tracker's output per frame on noisy detections of it."""
    rng = np.random.default_rng(seed)
    gt = synthetic_people(num_people, num_frames, rng)
    tracker = PoseTracker()
    return gt, [tracker.update(*noisy_detections(gt[f], rng, noise), timestamp=f / 30) for f in range(num_frames)]


def test_head_points_follow_the_documented_rule():
    kp = np.zeros((1, 17, 3), np.float32)
    kp[0, :, 2] = 0.9
    kp[0, COCO17.index("left_shoulder"), :2] = [80, 200]
    kp[0, COCO17.index("right_shoulder"), :2] = [120, 200]
    for name in ("left_eye", "right_eye", "left_ear", "right_ear"):
        kp[0, COCO17.index(name), :2] = [100, 100]
    out = to_posetrack18_keypoints(kp, "coco17")
    # shoulders' midpoint S = (100, 200), head centre E = (100, 100): bottom = S + 0.45 (E - S), top = E + 0.45 (E - S)
    np.testing.assert_allclose(out[0, POSETRACK18.index("head_bottom")], [100, 155, 0.9], rtol=1e-6)
    np.testing.assert_allclose(out[0, POSETRACK18.index("head_top")], [100, 55, 0.9], rtol=1e-6)
    np.testing.assert_array_equal(out[0, 5:], kp[0, 5:])
    kp[0, COCO17.index("left_shoulder"), 2] = 0.0  # no shoulder pair: the head points are left out
    np.testing.assert_array_equal(to_posetrack18_keypoints(kp, "coco17")[0, 1:3], 0.0)
    with pytest.raises(ValueError):
        to_posetrack18_keypoints(kp, "mpii16")


def test_every_writer_produces_a_readable_file(tmp_path):
    _, outs = tracked_frames()
    writers = [PoseTrack18Writer(tmp_path / "pt18" / f"{SEQ}.json"), PoseTrack17Writer(tmp_path / "pt17" / f"{SEQ}.json"),
               JsonlWriter(tmp_path / "t.jsonl"), CsvWriter(tmp_path / "t.csv"), MotWriter(tmp_path / "t.mot.txt")]
    for w in writers:
        with w:
            for f, out in enumerate(outs):
                w.write(f, f / 30, out)
    rows_expected = sum(len(o) for o in outs)
    # every person-row of the run, in frame order: what each file must give back
    keypoints = np.concatenate([o.keypoints for o in outs])
    boxes = np.concatenate([o.boxes for o in outs])
    assert (keypoints[:, :, 2] > 0).all()   # every joint scored, so no file leaves one out
    for sub in ("pt18", "pt17"):
        seq = load_sequence(tmp_path / sub / f"{SEQ}.json")
        assert len(seq.frames) == len(outs)
        assert [f.track_ids.tolist() for f in seq.frames] == [o.ids.tolist() for o in outs]
        read = np.concatenate([f.keypoints for f in seq.frames])
        # COCO and PoseTrack share the body joints (from the shoulders on), in the same order
        np.testing.assert_allclose(read[:, 5:, :2], keypoints[:, 5:, :2], atol=1e-3)
    # a joint the tracker never saw (score 0) is written as absent (0, 0, 0), not as a point at the origin
    outs[-1].keypoints[0, COCO17.index("left_wrist")] = [50, 60, 0]
    with PoseTrack18Writer(tmp_path / "pt18b" / f"{SEQ}.json") as w:
        w.write(0, 0.0, outs[-1])
    kp = load_sequence(tmp_path / "pt18b" / f"{SEQ}.json").frames[0].keypoints[0]
    np.testing.assert_array_equal(kp[POSETRACK18.index("left_wrist")], 0)
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert len(lines) == len(outs)
    last = json.loads(lines[-1])
    assert last["frame"] == len(outs) - 1 and len(last["tracks"][0]["keypoints"]) == 17
    read = np.array([p["keypoints"] for line in lines for p in json.loads(line)["tracks"]], np.float64)
    np.testing.assert_allclose(read, keypoints, atol=1e-3)
    with open(tmp_path / "t.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == rows_expected and float(table[0]["nose_score"]) > 0
    assert {row["nose_state"] for row in table} == {"observed"}
    np.testing.assert_allclose([[float(row["right_ankle_x"]), float(row["right_ankle_y"])] for row in table],
                               keypoints[:, COCO17.index("right_ankle"), :2], atol=1e-3)
    mot = [line.split(",") for line in (tmp_path / "t.mot.txt").read_text().splitlines()]
    assert len(mot) == rows_expected and all(len(r) == 10 for r in mot)
    assert mot[0][0] == str(next(f for f, o in enumerate(outs) if len(o)) + 1)  # 1-based frames
    left_top_width_height = np.array([r[2:6] for r in mot], np.float64)
    np.testing.assert_allclose(left_top_width_height[:, :2] + left_top_width_height[:, 2:], boxes[:, 2:4], atol=0.02)
    np.testing.assert_allclose(left_top_width_height[:, :2], boxes[:, :2], atol=0.01)


def test_line_formats_say_which_joints_were_observed_predicted_or_hidden(tmp_path):
    _, outs = tracked_frames(num_people=2, num_frames=6)
    out = outs[-1]
    states = np.zeros_like(out.joint_states)
    states[0, COCO17.index("left_wrist")] = JointState.PREDICTED
    states[1, COCO17.index("right_ankle")] = JointState.HIDDEN
    out.joint_states = states
    with JsonlWriter(tmp_path / "t.jsonl") as jl, CsvWriter(tmp_path / "t.csv") as cw:
        jl.write(5, 0.2, out)
        cw.write(5, 0.2, out)
    people = json.loads((tmp_path / "t.jsonl").read_text())["tracks"]
    assert people[0]["joint_states"][COCO17.index("left_wrist")] == "predicted"
    assert people[1]["joint_states"][COCO17.index("right_ankle")] == "hidden"
    assert sum(s == "observed" for p in people for s in p["joint_states"]) == 2 * 17 - 2
    with open(tmp_path / "t.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [rows[0]["left_wrist_state"], rows[1]["right_ankle_state"], rows[1]["left_wrist_state"]] == \
        ["predicted", "hidden", "observed"]
    assert float(rows[0]["left_wrist_x"]) == pytest.approx(float(out.keypoints[0, COCO17.index("left_wrist"), 0]), abs=1e-3)


def test_files_are_valid_before_close(tmp_path):
    _, outs = tracked_frames(num_frames=10)
    jl = JsonlWriter(tmp_path / "t.jsonl")
    for f, out in enumerate(outs):
        jl.write(f, f / 30, out)
    # as if the run stopped here (crash, SIGKILL): the lines are complete up to the last frame
    assert len([json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]) == 10
    jl.close()


@pytest.mark.parametrize("writer, write_file", [(PoseTrack18Writer, write_posetrack18),
                                                (PoseTrack17Writer, write_posetrack17)])
def test_posetrack_file_equals_the_one_shot_writer_and_survives_a_crash(tmp_path, writer, write_file):
    _, outs = tracked_frames(num_frames=12)
    frames = []  # what the writer journals, kept here to write the same sequence in one go
    with writer(tmp_path / "closed" / f"{SEQ}.json") as w:
        journal_append = w._journal.append
        w._journal.append = lambda frame: (frames.append(frame), journal_append(frame))
        for f, out in enumerate(outs):
            w.write(f, f / 30, out)
    closed = tmp_path / "closed" / f"{SEQ}.json"
    assert not list((tmp_path / "closed").glob(".*"))          # the journal is gone
    # the streamed file holds exactly what the in-memory writer gives for the same frames
    write_file(tmp_path / "one_shot.json", PoseTrackSequence(SEQ, "000007", len(frames), frames))
    assert json.loads(closed.read_text()) == json.loads((tmp_path / "one_shot.json").read_text())

    crashed = writer(tmp_path / "crashed" / f"{SEQ}.json")
    for f, out in enumerate(outs):
        crashed.write(f, f / 30, out)
    # killed before close(), in the middle of appending a 13th frame: no JSON yet, a journal instead
    journal = journal_path(tmp_path / "crashed" / f"{SEQ}.json")
    with open(journal, "a") as fh:
        fh.write('{"file_name": "torn')
    assert not (tmp_path / "crashed" / f"{SEQ}.json").exists()
    target, frames = finish_journal(journal)
    assert (target, frames) == (tmp_path / "crashed" / f"{SEQ}.json", 12) and not journal.exists()
    assert target.read_text() == closed.read_text()


def _ground_truth_sequence(gt: np.ndarray) -> PoseTrackSequence:
    """PoseTrack18 ground truth of synthetic people: head points by the COCO rule, square head boxes."""
    frames = []
    for f in range(len(gt)):
        kp = to_posetrack18_keypoints(gt[f].astype(np.float32), "coco17")
        kp[:, 3:5] = 0  # ears are not annotated in PoseTrack
        kp[:, :, 2] = np.where(kp[:, :, 2] > 0, 1, 0)
        bottom, top = kp[:, 1, :2], kp[:, 2, :2]
        half = np.linalg.norm(top - bottom, axis=1, keepdims=True) / 2
        mid = (top + bottom) / 2
        n = len(kp)
        frames.append(PoseTrackFrame(
            f"images/{SEQ}/{f:06d}.jpg", make_image_id(7, f), True, np.arange(n, dtype=np.int64), kp,
            np.full((n, 17), np.nan, np.float32), np.full((n, 4), np.nan, np.float32),
            np.concatenate([mid - half, mid + half], axis=1).astype(np.float32)))
    return PoseTrackSequence(SEQ, "000007", len(frames), frames)


def test_export_then_evaluate_round_trip(tmp_path):
    gt, outs = tracked_frames(num_people=4, num_frames=40)
    write_posetrack18(tmp_path / "gt" / f"{SEQ}.json", _ground_truth_sequence(gt))
    with PoseTrack18Writer(tmp_path / "pred" / f"{SEQ}.json") as writer:
        for f, out in enumerate(outs):
            writer.write(f, f / 30, out)
    result = evaluate_folders(tmp_path / "gt", tmp_path / "pred")
    summary = result.summary()
    # the first frame's people are confirmed at once, so every frame is tracked
    assert summary["mAP"]["Total"] > 95
    assert summary["MOTA"]["Total"] > 80
    assert summary["id_switches"] == 0
    assert summary["IDF1"]["Total"] > 90
    # predictions evaluated against themselves are perfect
    pred_as_gt = load_sequence(tmp_path / "pred" / f"{SEQ}.json")
    for fr in pred_as_gt.frames:
        fr.head_boxes = np.tile(np.array([[0, 0, 30, 40]], np.float32), (fr.num_people, 1))
    write_posetrack18(tmp_path / "gt2" / f"{SEQ}.json", pred_as_gt)
    self_check = evaluate_folders(tmp_path / "gt2", tmp_path / "pred").summary()
    assert self_check["mAP"]["Total"] == 100.0 and self_check["MOTA"]["Total"] == 100.0


@pytest.mark.parametrize("writer", [PoseTrack18Writer, PoseTrack17Writer])
def test_lost_frames_keep_every_later_frame_in_its_place(tmp_path, writer):
    _, outs = tracked_frames(num_frames=8)
    path = tmp_path / f"{SEQ}.json"
    with writer(path) as w:
        for f in range(8):                              # frames 2, 3 and 6 could not be decoded
            if f in (2, 3, 6):
                w.write_lost(f, f / 30)
            else:
                w.write(f, f / 30, outs[f])
    frames = load_sequence(path).frames
    assert [f.file_name.rsplit("/", 1)[-1] for f in frames] == [f"{i:06d}.jpg" for i in range(8)]
    assert [len(f.track_ids) for f in frames] == [len(outs[i]) if i not in (2, 3, 6) else 0 for i in range(8)]
    assert frames[4].track_ids.tolist() == outs[4].ids.tolist()


def test_annotation_ids_of_a_crowd_of_150_stay_unique(tmp_path):
    """150 people a frame (ids image_id * 100 + row ran into the next frame's from row 100 on):
    the journalled file and the one-shot writer give every annotation its own id."""
    grid = np.stack(np.meshgrid(np.arange(15), np.arange(10)), axis=-1).reshape(-1, 2) * [100.0, 180.0] + [50, 90]
    crowd = np.concatenate([COCO_TEMPLATE[None] * 150 + grid[:, None], np.ones((150, 17, 1))], axis=2)
    rng = np.random.default_rng(0)
    tracker = PoseTracker()
    outs = [tracker.update(*noisy_detections(crowd, rng, 0.002), timestamp=f / 30) for f in range(3)]
    assert [len(out) for out in outs] == [150] * 3
    frames = []
    with PoseTrack18Writer(tmp_path / f"{SEQ}.json") as w:
        journal_append = w._journal.append
        w._journal.append = lambda frame: (frames.append(frame), journal_append(frame))
        for f, out in enumerate(outs):
            w.write(f, f / 30, out)
    write_posetrack18(tmp_path / "one_shot.json", PoseTrackSequence(SEQ, "000007", len(frames), frames))
    streamed = json.loads((tmp_path / f"{SEQ}.json").read_text())
    assert streamed == json.loads((tmp_path / "one_shot.json").read_text())
    ids = [annotation["id"] for annotation in streamed["annotations"]]
    assert len(set(ids)) == len(ids) == 450
    assert [frame.num_people for frame in load_sequence(tmp_path / f"{SEQ}.json").frames] == [150] * 3


def test_a_file_name_with_commas_and_quotes_is_one_csv_cell(tmp_path):
    _, outs = tracked_frames(num_frames=2)
    with CsvWriter(tmp_path / "t.csv") as w:
        w.write(0, 0.0, outs[0], 'take 2, "final".png')
        w.write(1, 0.04, outs[1])
    with open(tmp_path / "t.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {(row["frame"], row["file"]) for row in rows} == {("0", 'take 2, "final".png'), ("1", "")}
    assert all(row["track_id"].isdigit() for row in rows)

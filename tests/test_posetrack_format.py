"""engines.formats.posetrack: the real PoseTrack18 sample loads; both forms round-trip; bad files are named."""

import json
from pathlib import Path

import numpy as np
import pytest

from engines.errors import UserError
from engines.formats.posetrack import (
    PoseTrackFrame, PoseTrackSequence, joints_present, load_sequence, load_sequence_dir, make_image_id,
    write_posetrack17, write_posetrack18,
)

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared/data/posetrack18_sample/annotations/val"


def _synthetic_sequence() -> PoseTrackSequence:
    rng = np.random.default_rng(0)
    frames = []
    for i in range(3):
        kp = np.concatenate([rng.uniform(10, 300, (2, 17, 2)), np.ones((2, 17, 1))], axis=2).astype(np.float32)
        kp[:, 3:5] = 0  # ears unannotated, as in PoseTrack18
        frames.append(PoseTrackFrame(
            file_name=f"images/val/000042_demo/{i:06d}.jpg", image_id=make_image_id(42, i), is_labeled=True,
            track_ids=np.array([3, 7]), keypoints=kp, scores=rng.uniform(0, 1, (2, 17)).astype(np.float32),
            boxes=np.array([[10, 20, 110, 220], [5, 6, 50, 70]], np.float32),
            head_boxes=np.array([[40, 20, 70, 50], [10, 6, 30, 20]], np.float32),
            ignore_regions=[np.array([[0, 0], [5, 0], [5, 5]], np.float32)]))
    frames.append(PoseTrackFrame.empty("images/val/000042_demo/000003.jpg", make_image_id(42, 3)))
    return PoseTrackSequence(name="000042_demo", vid_id="000042", nframes=4, frames=frames)


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared PoseTrack18 sample absent")
def test_real_sample_loads_with_expected_content():
    seqs = load_sequence_dir(SAMPLE)
    assert sorted(seqs) == ["003418_mpii_test.json", "009473_mpii_test.json", "012834_mpii_test.json"]
    raw = json.loads((SAMPLE / "003418_mpii_test.json").read_text())
    seq = seqs["003418_mpii_test.json"]
    frame = seq.frames[0]
    assert (seq.vid_id, seq.nframes, len(seq.frames)) == ("003418", 149, 1)
    assert frame.image_id == 10034180000 == make_image_id(3418, 0)
    assert len(frame.ignore_regions) == 9
    np.testing.assert_allclose(frame.keypoints[0].reshape(-1), raw["annotations"][0]["keypoints"], rtol=1e-6)
    x, y, w, h = raw["annotations"][0]["bbox_head"]
    np.testing.assert_allclose(frame.head_boxes[0], [x, y, x + w, y + h])
    assert np.isnan(frame.scores).all()  # GT has empty score lists
    assert joints_present(frame.keypoints).sum() == raw["annotations"][0]["num_keypoints"]
    assert [s.frames[0].num_people for s in seqs.values()] == [1, 2, 11]


@pytest.mark.parametrize("writer", [write_posetrack18, write_posetrack17])
def test_round_trip(tmp_path, writer):
    seq = _synthetic_sequence()
    writer(tmp_path / "000042_demo.json", seq)
    back = load_sequence(tmp_path / "000042_demo.json")
    assert len(back.frames) == 4 and back.frames[3].num_people == 0
    for a, b in zip(seq.frames, back.frames):
        np.testing.assert_array_equal(a.track_ids, b.track_ids)
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
        np.testing.assert_allclose(a.head_boxes, b.head_boxes, atol=1e-3)
        present = joints_present(a.keypoints)
        np.testing.assert_allclose(a.scores[present], b.scores[present], atol=1e-3)
        assert len(a.ignore_regions) == len(b.ignore_regions)


def test_2018_file_has_official_layout(tmp_path):
    write_posetrack18(tmp_path / "s.json", _synthetic_sequence())
    data = json.loads((tmp_path / "s.json").read_text())
    cat = data["categories"][0]
    assert cat["keypoints"][:3] == ["nose", "head_bottom", "head_top"] and len(cat["keypoints"]) == 17
    assert [16, 14] in cat["skeleton"]  # 1-based
    ann = data["annotations"][0]
    assert len(ann["keypoints"]) == 51 and len(ann["scores"]) == 17
    assert ann["bbox"] == [10, 20, 100, 200]  # xywh
    for key in ("file_name", "id", "frame_id", "vid_id", "nframes", "is_labeled", "ignore_regions_x"):
        assert key in data["images"][0]


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not valid JSON"),
    ("[]", "top level"),
    ('{"foo": 1}', "neither"),
    ('{"images": [], "annotations": []}', "no 'categories'"),
    ('{"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"keypoints": ["nose"]}],'
     ' "annotations": []}', "category keypoints"),
    ('{"annolist": [{"image": [{"name": "a/000000.jpg"}], "annorect": [{"track_id": [0],'
     ' "annopoints": [{"point": [{"id": [99], "x": [1], "y": [2]}]}]}]}]}', "joint id"),
])
def test_malformed_files_name_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "bad_seq.json"
    path.write_text(content)
    with pytest.raises(UserError, match=problem) as info:
        load_sequence(path)
    assert "bad_seq.json" in str(info.value)


def test_wrong_keypoint_count_is_reported(tmp_path):
    seq = _synthetic_sequence()
    write_posetrack18(tmp_path / "s.json", seq)
    data = json.loads((tmp_path / "s.json").read_text())
    data["annotations"][1]["keypoints"] = data["annotations"][1]["keypoints"][:50]
    (tmp_path / "s.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"s.json: image 0 person 1 keypoints should be 51"):
        load_sequence(tmp_path / "s.json")


def _crowd_frame(frame: int, people: int) -> PoseTrackFrame:
    kp = np.ones((people, 17, 3), np.float32)
    kp[:, :, 0] = np.arange(people)[:, None]
    return PoseTrackFrame(f"images/val/000042_demo/{frame:06d}.jpg", make_image_id(42, frame), True,
                          np.arange(people, dtype=np.int64), kp, np.full((people, 17), 0.5, np.float32),
                          np.full((people, 4), np.nan, np.float32), np.full((people, 4), np.nan, np.float32))


def test_annotation_ids_are_unique_in_a_frame_of_150_people(tmp_path):
    seq = PoseTrackSequence("000042_demo", "000042", 3, [_crowd_frame(0, 150), _crowd_frame(1, 150), _crowd_frame(2, 3)])
    write_posetrack18(tmp_path / "s.json", seq)
    annotations = json.loads((tmp_path / "s.json").read_text())["annotations"]
    ids = [a["id"] for a in annotations]
    assert len(set(ids)) == len(ids) == 303
    back = load_sequence(tmp_path / "s.json")
    assert [f.num_people for f in back.frames] == [150, 150, 3]
    np.testing.assert_array_equal(back.frames[1].keypoints[:, 0, 0], np.arange(150))


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared PoseTrack18 sample absent")
def test_the_official_annotation_ids_are_kept_below_100_people(tmp_path):
    """The ids poseval's converter writes (image id * 100 + row): a sample file written back keeps them."""
    for name, seq in load_sequence_dir(SAMPLE).items():
        write_posetrack18(tmp_path / name, seq)
        official = [a["id"] for a in json.loads((SAMPLE / name).read_text())["annotations"]]
        assert [a["id"] for a in json.loads((tmp_path / name).read_text())["annotations"]] == official

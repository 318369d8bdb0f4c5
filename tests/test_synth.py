"""Synthetic people: ground truth agrees with what is drawn, files load, runs are reproducible."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.errors import UserError
from engines.pose.schemas import COCO17, POSETRACK18
from trainer.synth import cli, scene
from trainer.synth.figure import JOINT_PARTS, LABEL_STRIDE, NUM_GT, place, render_people, sample_looks, visibility
from trainer.synth.motion import MOTION_ID, motion_angles
from trainer.synth.sequence import VideoKnobs, frames
from trainer.synth.skeleton import sample_bodies
from trainer.synth.stills import StillKnobs, Truth, sample_still
from trainer.synth.writers import posetrack_frame

REPO = Path(__file__).resolve().parents[1]


def _stills(n=12, **knobs):
    k = StillKnobs(**knobs)
    noise = scene.Noise(np.random.default_rng(0), k.width, k.height, k.noise)
    return [sample_still(np.random.default_rng([5, i]), k, noise) for i in range(n)]


def _solo_labels(placed, looks, p, shape):
    """The person drawn alone on an empty frame: their own, unoccluded body mask with part labels."""
    frame = np.zeros(shape + (3,), np.uint8)
    labels = np.zeros(shape, np.int16)
    render_people(frame, labels, placed.take([p]), looks.take([p]))
    return labels % LABEL_STRIDE


def test_labelled_keypoints_lie_on_their_own_drawn_body():
    checked = 0
    for frame, truth, labels, placed in _stills(occlusion=0.8):
        # sample_still does not return looks; re-rendering needs any looks (labels do not depend on colour)
        looks = sample_looks(np.random.default_rng(0), len(truth.joints), len(scene.clothing_patterns()))
        looks.bald[:] = placed.bodies.build < 0  # all with hair, as label shapes of bald heads differ
        for p in range(len(truth.joints)):
            solo = _solo_labels(placed, looks, p, labels.shape)
            for j in np.flatnonzero(truth.flags[p] > 0):
                x, y = np.round(truth.joints[p, j]).astype(int)
                part = solo[y, x]
                assert part > 0, f"joint {j} of person {p} at ({x},{y}) is off the drawn body"
                if truth.flags[p, j] == 2:  # seen in the crowd, so surely seen on its own segment when alone
                    assert JOINT_PARTS[j, part], f"joint {j} lies on part {part}, not its own segment"
                checked += 1
    assert checked > 200


def test_visibility_flags_agree_with_the_rendered_label_map():
    counts = np.zeros(3, int)
    for frame, truth, labels, placed in _stills(occlusion=0.9):
        h, w = labels.shape
        for p in range(len(truth.joints)):
            for j in range(NUM_GT):
                v = truth.flags[p, j]
                counts[v] += 1
                x, y = np.round(truth.joints[p, j]).astype(int)
                inside = 0 <= x < w and 0 <= y < h
                if v == 0:
                    assert not inside or j < 5  # outside, or a face point turned away
                    continue
                assert inside
                lab = labels[y, x]
                mine = lab // LABEL_STRIDE == p + 1 and JOINT_PARTS[j, lab % LABEL_STRIDE]
                assert mine == (v == 2), (p, j, v, lab)
    assert counts.min() > 20, f"expected visible, occluded and unlabelled joints, got {counts}"


def test_yaw_decides_which_face_points_are_visible():
    n = 2
    rng = np.random.default_rng(0)
    bodies = sample_bodies(rng, n)
    angles, lift = motion_angles(np.full(n, MOTION_ID["stand"]), np.zeros(n), np.ones(n), np.ones(n))
    yaw = np.array([0.0, np.pi])  # facing the camera, facing away
    placed = place(bodies, angles, yaw, lift, np.array([[160.0, 230.0], [480.0, 230.0]]), np.full(n, 200.0), np.zeros(n))
    labels = np.zeros((240, 640), np.int16)
    render_people(np.zeros((240, 640, 3), np.uint8), labels, placed, sample_looks(rng, n, 4))
    xy, vis = visibility(placed, labels)
    # COCO's "left" is the person's left: on the image right when they face the camera
    for a, b in COCO17.flip_pairs:
        assert xy[0, a, 0] > xy[0, b, 0] and xy[1, a, 0] < xy[1, b, 0], COCO17.joints[a]
    nose, eyes, ears = 0, [1, 2], [3, 4]
    assert vis[0, nose] == 2 and (vis[0, eyes] == 2).all()
    assert vis[1, nose] == 0 and (vis[1, eyes] == 0).all() and (vis[1, ears] > 0).all()
    # PoseTrack ground truth labels the nose of the person turned away too, where it projects
    truth = Truth(xy, vis, np.zeros((n, 4), np.float32), np.ones(n), np.zeros((n, 4), np.float32))
    frame = posetrack_frame(truth, np.ones(n, bool), np.arange(n), "f.jpg", 1, 640, 240)
    assert POSETRACK18.joints[0] == "nose" and (frame.keypoints[:, 0, 2] == 1).all()
    np.testing.assert_allclose(frame.keypoints[1, 0, :2], xy[1, nose], atol=0.01)
    frame = posetrack_frame(truth, np.ones(n, bool), np.arange(n), "f.jpg", 1, 400, 240)  # 2nd nose off-frame
    assert frame.keypoints[:, 0, 2].tolist() == [1, 0]


def test_images_round_trip_through_pycocotools_and_are_deterministic(tmp_path):
    from pycocotools.coco import COCO

    args = ["images", "--count", "5", "--seed", "11", "--size", "320x240", "--people", "2-4"]
    assert cli.main(args + ["--out", str(tmp_path / "a")]) == 0
    assert cli.main(args + ["--out", str(tmp_path / "b")]) == 0
    assert cli.main(["images", "--count", "5", "--seed", "12", "--size", "320x240", "--people", "2-4",
                     "--out", str(tmp_path / "c")]) == 0
    a = (tmp_path / "a" / "annotations.json").read_bytes()
    assert a == (tmp_path / "b" / "annotations.json").read_bytes()
    assert a != (tmp_path / "c" / "annotations.json").read_bytes()
    assert (tmp_path / "a" / "images" / "000003.jpg").read_bytes() == (tmp_path / "b" / "images" / "000003.jpg").read_bytes()

    coco = COCO(str(tmp_path / "a" / "annotations.json"))
    assert len(coco.getImgIds()) == 5
    cat = coco.loadCats(1)[0]
    assert cat["keypoints"] == list(COCO17.joints)
    assert [tuple(e) for e in cat["skeleton"]] == [(a + 1, b + 1) for a, b in COCO17.skeleton]
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= 5
    for ann in anns:
        img = coco.loadImgs(ann["image_id"])[0]
        pixels = cv2.imread(str(tmp_path / "a" / img["file_name"]))
        assert pixels.shape == (img["height"], img["width"], 3)
        kp = np.array(ann["keypoints"]).reshape(17, 3)
        assert set(kp[:, 2]) <= {0, 1, 2} and ann["num_keypoints"] == np.count_nonzero(kp[:, 2])
        x, y, w, h = ann["bbox"]
        inside = kp[kp[:, 2] == 2, :2]
        assert ((inside >= [x - 1, y - 1]) & (inside <= [x + w + 1, y + h + 1])).all()
        assert ann["iscrowd"] == 0 and 0 < ann["area"] <= w * h


def test_videos_write_mp4_frames_and_posetrack_files_that_load(tmp_path):
    from pycocotools.coco import COCO

    from engines.formats.posetrack import load_sequence

    out = tmp_path / "v"
    assert cli.main(["videos", "--count", "1", "--frames", "12", "--seed", "3", "--size", "320x192",
                     "--people", "3-4", "--split", "val", "--out", str(out)]) == 0
    seq = load_sequence(out / "annotations" / "val" / "000001_synth.json")
    old = load_sequence(out / "annotations_2017" / "val" / "000001_synth.json")
    assert len(seq.frames) == len(old.frames) == 12
    for f18, f17 in zip(seq.frames, old.frames):
        assert (out / f18.file_name).is_file()
        np.testing.assert_array_equal(f18.track_ids, f17.track_ids)
        # the 2017 form has no ears; everything else survives the round trip
        keep = [i for i in range(17) if i not in (3, 4)]
        np.testing.assert_allclose(f18.keypoints[:, keep, :2], f17.keypoints[:, keep, :2], atol=1e-3)
        assert np.isfinite(f18.head_boxes).all()
    assert sum(f.num_people for f in seq.frames) > 12
    data = json.loads((out / "annotations" / "val" / "000001_synth.json").read_text())
    assert data["categories"][0]["keypoints"] == list(POSETRACK18.joints)
    COCO(str(out / "annotations" / "val" / "000001_synth.json"))  # COCO-like enough for pycocotools
    cap = cv2.VideoCapture(str(out / "videos" / "000001_synth.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 12


def test_a_larger_count_makes_the_same_first_videos_and_then_others(tmp_path):
    # the README's larger tracking sets rely on it: --count 30 holds the six videos of --count 6
    def make(count):
        out = tmp_path / str(count)
        assert cli.main(["videos", "--count", str(count), "--frames", "6", "--seed", "5", "--size", "320x192",
                         "--people", "2-3", "--no-images", "--out", str(out)]) == 0
        return [f.read_bytes() for f in sorted((out / "annotations" / "train").glob("*.json"))]

    one, two = make(1), make(2)
    assert len(two) == 2 and two[0] == one[0] and two[1] != two[0]


def test_track_ids_follow_each_person_without_swaps():
    knobs = VideoKnobs(width=480, height=270, people=(6, 6), frames=60, occlusion=1.0, noise=0)
    last = {}
    moves = []
    for fr in frames(np.random.default_rng(4), knobs):
        pts, vis = fr.truth.joints, fr.truth.flags
        for p in range(len(pts)):
            tid = int(fr.track_ids[p])
            if tid in last and vis[p].any():
                prev_pts, prev_vis = last[tid]
                # shoulders and hips travel with the body; feet and hands swing faster
                both = (vis[p] > 0) & (prev_vis > 0) & np.isin(np.arange(NUM_GT), [5, 6, 11, 12])
                if both.any():
                    step = np.linalg.norm(pts[p][both] - prev_pts[both], axis=1).max()
                    height = np.ptp(pts[p][:, 1])
                    moves.append(step / height)
            last[tid] = (pts[p], vis[p])
        assert len(set(fr.track_ids.tolist())) == len(fr.track_ids)
    # One frame moves the torso by a small fraction of the body: an id swap between people would jump.
    assert len(moves) > 100 and max(moves) < 0.15


def test_images_heights_set_how_tall_people_are(tmp_path):
    assert cli.main(["images", "--count", "6", "--people", "3", "--occlusion", "0", "--heights", "0.2-0.25",
                     "--out", str(tmp_path / "s")]) == 0
    people = json.loads((tmp_path / "s" / "annotations.json").read_text())["annotations"]
    # the box bounds the drawn pixels: from head to feet (or less, when cut by the border or bent)
    tall = np.array([p["bbox"][3] for p in people])
    assert len(tall) >= 15 and tall.max() <= 0.25 * 360 * 1.1 and np.median(tall) >= 0.15 * 360


def _presence(knobs, seed):
    """Per track id, the frames in which that person is annotated (visible enough)."""
    present = {}
    for fr in frames(np.random.default_rng(seed), knobs):
        for p in np.flatnonzero(fr.keep):
            present.setdefault(int(fr.track_ids[p]), []).append(fr.index)
    return present


def test_people_vanish_behind_pillars_and_come_back_with_their_id():
    knobs = VideoKnobs(width=480, height=270, people=(4, 4), frames=150, occluders=2, away=(30.0, 30.0),
                       motions=("walk",), noise=0)
    stage = None
    hidden_inside = 0
    for fr in frames(np.random.default_rng(5), knobs):
        if stage is None:
            stage = fr.image.astype(int)
        inside = ((fr.truth.joints >= 0) & (fr.truth.joints < [480, 270])).all(axis=(1, 2))
        # in the view, yet not a pixel of them shows: behind a pillar (nobody leaves: away is 30 s)
        hidden_inside += int((inside & (fr.truth.areas == 0)).sum())
        assert (fr.truth.flags[inside & (fr.truth.areas == 0)] != 2).all()
    assert hidden_inside >= 25   # a second or more of someone fully hidden
    gaps = [b - a for seen in _presence(knobs, 5).values() for a, b in zip(seen, seen[1:]) if b - a > 1]
    assert max(gaps) >= 25       # ... after which they are annotated again under the same id


def test_walkers_who_leave_stay_away_for_the_asked_seconds():
    knobs = VideoKnobs(width=480, height=270, people=(3, 3), frames=250, away=(3.0, 3.0), motions=("walk",), noise=0)
    gaps = [b - a for seen in _presence(knobs, 2).values() for a, b in zip(seen, seen[1:]) if b - a > 1]
    assert gaps and min(gaps) >= 3 * knobs.fps   # off-screen 3 s, plus the walk out of and into view


@pytest.mark.parametrize("argv", [
    ["images", "--count", "-1"], ["images", "--count", "2", "--size", "0x10"],
    ["images", "--count", "2", "--people", "3-1"], ["images", "--count", "2", "--motions", "fly"],
    ["videos", "--count", "1", "--frames", "0"], ["videos", "--count", "1", "--occlusion", "1.5"],
    ["videos", "--count", "1", "--occluders", "9"], ["videos", "--count", "1", "--away", "5-1"],
    ["videos", "--count", "1", "--away", "soon"], ["images", "--count", "2", "--heights", "0.01-0.5"],
])
def test_nonsense_knobs_are_refused_before_any_work(tmp_path, argv):
    out = tmp_path / "out"
    with pytest.raises(UserError):
        cli.main(argv + ["--out", str(out)])
    assert not out.exists()


def test_bad_knob_exits_2_with_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = subprocess.run([sys.executable, "-m", "trainer", "synth", "images", "--count", "2", "--out", str(blocker / "sub")],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "not writable" in r.stderr


def test_interrupted_runs_leave_no_half_written_files(tmp_path, monkeypatch):
    import trainer.synth.sequence as sequence
    import trainer.synth.stills as stills

    calls = {"n": 0}
    real_still, real_render = stills.sample_still, stills.render_frame

    def interrupt_on_third(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_still(*a, **k)

    monkeypatch.setattr(stills, "sample_still", interrupt_on_third)
    with pytest.raises(KeyboardInterrupt):
        cli.main(["images", "--count", "5", "--size", "160x120", "--out", str(tmp_path / "i")])
    assert not (tmp_path / "i" / "annotations.json").exists()
    assert not [p for p in (tmp_path / "i").rglob("*") if p.name.startswith(".")]

    calls["n"] = 0

    def render_then_interrupt(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_render(*a, **k)

    monkeypatch.setattr(sequence, "render_frame", render_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        cli.main(["videos", "--count", "1", "--frames", "8", "--size", "160x120", "--out", str(tmp_path / "v")])
    left = [p.name for p in (tmp_path / "v").rglob("*") if p.is_file()]
    assert not [n for n in left if n.endswith((".json", ".mp4"))], left


def test_demo_clip_is_small_busy_and_regenerates_identically(tmp_path):
    from engines.formats.posetrack import load_sequence

    assets = REPO / "tracker" / "assets"
    shipped = [assets / "demo.mp4", assets / "demo_gt" / "demo.json"]
    assert sum(p.stat().st_size for p in shipped) <= 3 * 1024 * 1024
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "demo_gt" / "demo.json").read_bytes() == shipped[1].read_bytes()
    seq = load_sequence(shipped[1])
    cap = cv2.VideoCapture(str(shipped[0]))
    assert cap.get(cv2.CAP_PROP_FPS) == 25 and (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 360)
    assert len(seq.frames) == int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 250
    ids = set(np.concatenate([f.track_ids for f in seq.frames]).tolist())
    assert 4 <= len(ids) <= 6
    # people cross: in some frames two people's boxes overlap
    overlapping = 0
    for f in seq.frames:
        b = f.boxes
        ix = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
        iy = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
        overlapping += int((np.triu((ix > 0) & (iy > 0), 1)).any())
    assert overlapping > 25


def test_bench_reports_frames_per_second(capsys):
    assert cli.main(["bench", "--frames", "4", "--repeats", "1", "--size", "160x96"]) == 0
    found = re.search(r"median ([\d.]+) frames/s rendered\+written \(render only ([\d.]+); repeats ([\d.]+)\)",
                      capsys.readouterr().out)
    assert found, "no frames/s line"
    total, render_only, repeat = map(float, found.groups())
    assert total > 0 and repeat == total           # one repeat: it is the median
    assert render_only >= total                    # rendering is part of rendering and writing

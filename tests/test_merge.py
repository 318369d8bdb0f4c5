"""`python -m trainer merge`: several synthetic sets as one annotation file the trainer reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from engines.pose.schemas import get_schema
from trainer.__main__ import main as trainer_main
from trainer.datasets.coco import load_coco_people


def test_merged_sets_keep_every_person_and_image_under_new_ids(make_synth_images, tmp_path, capsys):
    data = make_synth_images("merge", "160x120", ("easy", 3, 1), ("crowd", 2, 5))
    sources = [data / "easy" / "annotations.json", data / "crowd" / "annotations.json"]
    out = tmp_path / "mix" / "annotations.json"
    assert trainer_main(["merge", *map(str, sources), "--out", str(out)]) == 0
    parts = [json.loads(s.read_text()) for s in sources]
    merged = json.loads(out.read_text())
    assert f"{len(merged['images'])} images" in capsys.readouterr().out

    assert len(merged["images"]) == sum(len(p["images"]) for p in parts) == 5
    assert [im["id"] for im in merged["images"]] == [1, 2, 3, 4, 5]
    assert len({a["id"] for a in merged["annotations"]}) == len(merged["annotations"])
    # the same people, in the same order, on the renumbered images
    assert [a["keypoints"] for a in merged["annotations"]] == [a["keypoints"] for p in parts for a in p["annotations"]]
    crowd_row = {im["id"]: k for k, im in enumerate(parts[1]["images"])}
    crowd_people = merged["annotations"][len(parts[0]["annotations"]):]
    assert [a["image_id"] for a in crowd_people] == [4 + crowd_row[a["image_id"]] for a in parts[1]["annotations"]]

    # the trainer reads it as it reads its sources: every image path opens, every person is there
    people = load_coco_people(out, None, get_schema("coco17"), (128, 160))
    by_source = [load_coco_people(s, None, get_schema("coco17"), (128, 160)) for s in sources]
    assert len(people) == sum(len(p) for p in by_source) > 0
    assert [Path(path).resolve() for path in people.image_paths] == [
        Path(path).resolve() for p in by_source for path in p.image_paths]
    assert all(cv2.imread(path) is not None for path in people.image_paths)
    np.testing.assert_array_equal(people.joints, np.concatenate([p.joints for p in by_source]))


def test_merging_a_file_that_is_not_coco_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"annotations": []}))
    proc = subprocess.run([sys.executable, "-m", "trainer", "merge", str(bad), "--out", str(tmp_path / "m.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr == f"trainer: error: {bad}: not a COCO annotation file (no 'images' list)\n"
    assert not (tmp_path / "m.json").exists()


def test_a_source_with_a_count_gives_that_many_of_its_images_with_their_people(make_synth_images, tmp_path):
    data = make_synth_images("merge_sample", "160x120", ("crowd", 6, 5))
    source = data / "crowd" / "annotations.json"
    whole = json.loads(source.read_text())
    runs = []
    for name, seed in (("a", "0"), ("b", "0"), ("c", "3")):
        out = tmp_path / name / "annotations.json"
        assert trainer_main(["merge", f"{source}:4", "--seed", seed, "--out", str(out)]) == 0
        runs.append(json.loads(out.read_text()))
    assert runs[0] == runs[1]                       # the same seed draws the same images
    drawn = {Path(im["file_name"]).name for im in runs[0]["images"]}
    assert len(drawn) == 4 and drawn != {Path(im["file_name"]).name for im in runs[2]["images"]}
    # every person of a drawn image, and nobody else
    name_of = {im["id"]: Path(im["file_name"]).name for im in whole["images"]}
    expected = [a["keypoints"] for a in whole["annotations"] if name_of[a["image_id"]] in drawn]
    assert [a["keypoints"] for a in runs[0]["annotations"]] == expected
    merged_name = {im["id"]: Path(im["file_name"]).name for im in runs[0]["images"]}
    assert [merged_name[a["image_id"]] for a in runs[0]["annotations"]] == [
        name_of[a["image_id"]] for a in whole["annotations"] if name_of[a["image_id"]] in drawn]

    proc = subprocess.run([sys.executable, "-m", "trainer", "merge", f"{source}:7", "--out", str(tmp_path / "m.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr == f"trainer: error: {source}:7: the file has only 6 images\n"


def test_merging_into_a_place_that_cannot_be_written_is_one_line(make_synth_images, tmp_path):
    source = make_synth_images("merge_out", "160x120", ("val", 1, 2)) / "val" / "annotations.json"
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = subprocess.run([sys.executable, "-m", "trainer", "merge", str(source), "--out", str(blocker / "m.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"trainer: error: cannot write {blocker / 'm.json'}: ") and proc.stderr.count("\n") == 1

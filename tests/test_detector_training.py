"""Training the person detector (MODEL.KIND centernet) on generated synthetic people: targets
that decode back to the annotated boxes, box AP of ground truth, the trainer end to end with
resume, checkpoints that load as detectors, the detector benchmark, and the bundled detector
finding the people of a freshly generated image."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from engines.formats.coco_eval import coco_ap
from engines.common.boxes import box_iou
from engines.detectors import load_detector
from engines.models.catalogue import CATALOGUE
from engines.detectors.centernet import decode_centernet
from engines.errors import run_cli
from engines.models.weights import ASSETS_DIR
from engines.formats.coco import load_person_boxes
from trainer.detection import DetectionDataset, centernet_loss, transform_boxes
from trainer.train_cli import main

REPO = Path(__file__).parents[1]
INPUT = (128, 96)


@pytest.fixture(scope="module")
def synth_data(make_synth_images) -> Path:
    return make_synth_images("synth_det", "320x180", ("train", 12, 3), ("val", 4, 4))


def write_cfg(tmp_path: Path, data: Path, **train) -> Path:
    cfg = yaml.safe_load((REPO / "trainer/configs/synthetic/centernet_384x224.yaml").read_text())
    cfg["OUTPUT_DIR"] = str(tmp_path / "runs")
    cfg["DATASET"]["ROOT"] = str(data)
    cfg["MODEL"]["IMAGE_SIZE"] = list(INPUT)
    cfg["TRAIN"].update({"BATCH_SIZE_PER_GPU": 4, "END_EPOCH": 4, "LR_STEP": [3], "VAL_EVERY": 1}, **train)
    path = tmp_path / "det.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def train(*argv: str) -> int:
    return run_cli(main, ["--no-progress", *argv], prog="trainer")


def test_people_without_visible_keypoints_are_ignored_not_missed(synth_data):
    ann = synth_data / "val" / "annotations.json"
    data = json.loads(ann.read_text())
    people = load_person_boxes(ann, None)
    usable = [a for a in data["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    assert sum(len(b) for b in people.boxes) == len(usable) > 0
    marked = {a["id"]: a["iscrowd"] for a in people.ground_truth["annotations"]}
    assert all(marked[a["id"]] == (a["num_keypoints"] == 0 or a["iscrowd"]) for a in data["annotations"])
    # ground truth as detections scores box AP 1 against the ground truth it came from
    results = [{"image_id": int(image_id), "category_id": 1, "score": 1.0,
                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]}
               for image_id, boxes in zip(people.image_ids, people.boxes) for x1, y1, x2, y2 in boxes]
    assert coco_ap(people.ground_truth, results, "bbox")[0] == pytest.approx(1.0)


def test_validation_targets_decode_to_the_letterboxed_boxes(synth_data):
    people = load_person_boxes(synth_data / "val" / "annotations.json", None)
    data = DetectionDataset(people, INPUT, train=False)
    for index in range(len(data)):
        sample = data[index]
        decoded = decode_centernet(sample["heat"][None].numpy(), sample["size"][None].numpy(),
                                   sample["offset"][None].numpy(), score_thresh=0.999)[0]
        expected = people.boxes[index] * sample["ratio"]
        expected = expected[(expected[:, 2:] - expected[:, :2] >= 2).all(1)]
        # people sharing a centre cell keep one target (the smaller one), so match each decoded box
        assert 0 < len(decoded) <= len(expected)
        assert box_iou(decoded[:, :4], expected).max(axis=1).min() > 0.999
        assert sample["input"].shape == (3, INPUT[1], INPUT[0])


def test_training_augmentation_moves_boxes_with_the_image():
    mirror = np.array([[-0.5, 0, 100.0], [0, 0.5, 10.0]])   # x -> 100 - x/2, y -> 10 + y/2
    boxes = np.array([[20, 20, 60, 100], [180, 0, 260, 40]], np.float32)
    moved = transform_boxes(boxes, mirror, (128, 96))
    np.testing.assert_allclose(moved[0], [70, 20, 90, 60])
    assert len(moved) == 1          # the second box lands at x in [-30, 10]: only 25% inside, dropped


def test_loss_is_lowest_for_the_targets_themselves(synth_data):
    people = load_person_boxes(synth_data / "train" / "annotations.json", None)
    sample = DetectionDataset(people, INPUT, train=True, seed=1)[0]
    batch = {k: v[None] for k, v in sample.items() if torch.is_tensor(v)}
    logits = torch.logit(batch["heat"].clamp(1e-4, 1 - 1e-4))
    right = centernet_loss((logits, batch["size"], batch["offset"]), batch)
    wrong = centernet_loss((torch.zeros_like(logits), batch["size"] * 0, batch["offset"] * 0), batch)
    assert right < 0.1 * wrong


def test_trainer_trains_resumes_and_writes_a_loadable_detector(tmp_path, synth_data, capsys):
    cfg = write_cfg(tmp_path, synth_data)
    assert train("--cfg", str(cfg), "--max-epochs", "2") == 0
    run = tmp_path / "runs" / "synthetic" / "det" / "run1"
    assert "paused" in capsys.readouterr().out
    assert train("--cfg", str(cfg)) == 0
    assert "resumed" in capsys.readouterr().out
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,lr,train_loss") and len(rows) == 5
    losses = [float(r.split(",")[2]) for r in rows[1:]]
    assert losses[-1] < losses[0]
    assert all(r.split(",")[4] != "" for r in rows[1:])          # box AP every epoch
    detector = load_detector(f"centernet:{run / 'final_state.pth'}", input_size_wh=INPUT, score_thresh=0.0)
    frame = np.full((180, 320, 3), 90, np.uint8)
    boxes = detector.detect(frame)
    assert boxes.dtype == np.float32 and boxes.shape[1] == 5
    assert (boxes[:, [0, 2]] <= 320).all() and (boxes[:, [1, 3]] <= 180).all()


def test_a_wider_detector_starts_computing_what_the_narrow_one_did(synth_data):
    from engines.detectors.centernet import CenterNetNet
    from engines.models.weights import load_state_dict_file, load_weights
    from trainer.widen import widened

    narrow_state = load_state_dict_file(ASSETS_DIR / "centernet_512x288.pth")
    narrow = load_weights(CenterNetNet(), narrow_state).float().eval()
    wide = CenterNetNet((16, 24, 96, 192))
    load_weights(wide, widened(narrow_state, wide)).eval()
    image = cv2.imread(str(next((synth_data / "val").glob("images/*.jpg"))))
    x = torch.from_numpy(cv2.resize(image, INPUT)[..., ::-1].transpose(2, 0, 1) / 255.0).float()[None]
    with torch.no_grad():
        for a, b in zip(narrow(x), wide(x)):
            assert torch.allclose(a, b, atol=1e-5)
    grown = wide.down16[0][0].weight          # 96 -> 192 outputs from 48 -> 96 inputs
    assert grown[:, 48:].abs().sum() == 0     # new inputs read as zero: nothing changes yet
    assert grown[96:, :48].abs().sum() > 0    # new outputs start from a fresh init: they can learn


def test_a_widened_detector_trains_and_loads_without_being_told_its_widths(tmp_path, synth_data, capsys):
    cfg = write_cfg(tmp_path, synth_data, END_EPOCH=1, LR_STEP=[1])
    start = str(ASSETS_DIR / "centernet_512x288.pth")
    assert train("--cfg", str(cfg), "MODEL.PRETRAINED", start, "MODEL.WIDTHS", "[16, 24, 64, 128]") == 0
    final = tmp_path / "runs" / "synthetic" / "det" / "run1" / "final_state.pth"
    from engines.detectors.centernet import widths_of
    from engines.models.weights import load_state_dict_file

    assert widths_of(load_state_dict_file(final)) == (16, 24, 64, 128)
    boxes = load_detector(f"centernet:{final}", input_size_wh=INPUT).detect(np.full((180, 320, 3), 90, np.uint8))
    assert boxes.shape[1] == 5
    assert train("--cfg", str(cfg), "MODEL.WIDTHS", "[16, 24, 48]") == 2
    assert "MODEL.WIDTHS must be 4 positive widths" in capsys.readouterr().err


def test_detector_config_rejects_a_non_coco_dataset(tmp_path, synth_data, capsys):
    cfg = write_cfg(tmp_path, synth_data)
    assert train("--cfg", str(cfg), "DATASET.NAME", "mpii") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "COCO-format" in err


def test_detector_benchmark_prints_a_row_per_detector(tmp_path, synth_data):
    image = next((synth_data / "val" / "images").glob("*.jpg"))
    run = subprocess.run([sys.executable, "-m", "engines", "bench", "--detector", "hog", "--image", str(image),
                          "--repeats", "2", "--warmup", "0", "--json"], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    [row] = json.loads(run.stdout)["rows"]
    assert row["detector"] == "hog" and row["frame"] == "320x180" and row["median_ms"] > 0
    bad = subprocess.run([sys.executable, "-m", "engines", "bench", "--detector", "hog", "--frame", "wide"],
                         cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and "--frame must be WxH" in bad.stderr


@pytest.mark.skipif(not (ASSETS_DIR / "centernet_512x288.pth").is_file(), reason="bundled detector not trained yet")
def test_bundled_detector_finds_synthetic_people(tmp_path):
    # 20 stills (about 80 people): with 6, one or two misses swing the share by 5 points
    subprocess.run([sys.executable, "-m", "trainer", "synth", "images", "--count", "20", "--out", str(tmp_path),
                    "--seed", "99"], check=True, cwd=REPO, capture_output=True)
    people = load_person_boxes(tmp_path / "annotations.json", None)
    detector = load_detector("centernet")
    assert detector.input_size == CATALOGUE["centernet"].input_size   # the catalogue's input is the one run
    found = total = 0
    for path, truth in zip(people.image_paths, people.boxes):
        boxes = detector.detect(cv2.imread(path))
        big = truth[(truth[:, 3] - truth[:, 1]) >= 40]      # people at least 40 px tall
        total += len(big)
        if len(boxes) and len(big):
            found += int((box_iou(big, boxes[:, :4]).max(axis=1) >= 0.5).sum())
    assert total > 5 and found / total >= 0.8

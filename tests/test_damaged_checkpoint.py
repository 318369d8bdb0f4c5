"""A damaged trainer checkpoint (empty, truncated) stops a resume with one line naming the file
and the ways on, leaves the file as it is, and the advice given works."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).parents[1]
TINY = {"WORKERS": 0, "SEED": 7,
        "MODEL": {"PRESET": "lite_w16_160x128", "IMAGE_SIZE": [64, 64]},
        "DATASET": {"NAME": "synthetic", "TRAIN_ANNOTATIONS": "train/annotations.json", "TRAIN_IMAGES": "",
                    "VAL_ANNOTATIONS": "val/annotations.json", "VAL_IMAGES": ""},
        "TRAIN": {"BATCH_SIZE_PER_GPU": 8, "END_EPOCH": 3, "LR": 0.002, "LR_STEP": [2]},
        "TEST": {"BATCH_SIZE_PER_GPU": 16, "USE_GT_BBOX": True}}


def trainer(*argv):
    return subprocess.run([sys.executable, "-m", "trainer", "--no-progress", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, make_synth_images):
    """(config, run folder) after one epoch of a three-epoch run."""
    data = make_synth_images("synth_ckpt", "160x120", ("train", 8, 1), ("val", 4, 2))
    tmp = tmp_path_factory.mktemp("ckpt")
    cfg = yaml.safe_load(yaml.safe_dump(TINY))
    cfg["OUTPUT_DIR"], cfg["DATASET"]["ROOT"] = str(tmp / "runs"), str(data)
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    done = trainer("--cfg", str(path), "--max-epochs", "1")
    assert done.returncode == 0, done.stderr
    return path, tmp / "runs" / "synthetic" / "tiny" / "run1"


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_damaged_checkpoint_is_one_line_and_left_alone(one_epoch, damage):
    cfg, run = one_epoch
    checkpoint = run / "checkpoint.pth"
    good = checkpoint.read_bytes()
    damaged = b"" if damage == "empty" else good[: len(good) // 2]
    checkpoint.write_bytes(damaged)
    try:
        resumed = trainer("--cfg", str(cfg))
        assert resumed.returncode == 2
        lines = resumed.stderr.splitlines()
        assert len(lines) == 1, resumed.stderr
        assert str(checkpoint) in lines[0] and "damaged" in lines[0] and "--new-run" in lines[0]
        assert f"MODEL.PRETRAINED {run / 'model_best.pth'}" in lines[0]
        assert checkpoint.read_bytes() == damaged       # never overwritten
        assert sorted(p.name for p in run.parent.iterdir()) == ["run1"]
    finally:
        checkpoint.write_bytes(good)


@pytest.mark.slow
def test_the_advice_works_a_new_run_from_the_best_weights(one_epoch, tmp_path):
    cfg, run = one_epoch
    checkpoint = run / "checkpoint.pth"
    good = checkpoint.read_bytes()
    checkpoint.write_bytes(good[:100])
    try:
        advice = trainer("--cfg", str(cfg)).stderr.split("go on from the best weights: ")[1].split()
        started = trainer("--cfg", str(cfg), "--max-epochs", "1", *advice)
        assert started.returncode == 0, started.stderr
        assert (run.parent / "run2" / "checkpoint.pth").is_file()
        assert checkpoint.read_bytes() == good[:100]
    finally:
        checkpoint.write_bytes(good)

"""Limb guides (issue 17): each ankle's training target reaches up its own shin to its own knee, so
the left and right ankle heatmaps cannot share one symmetric optimum. Checked on synthetic people
written by `python -m trainer synth images`, through the trainer's own dataset and transform."""

from pathlib import Path

import numpy as np
import pytest

from engines.errors import UserError
from engines.pose.schemas import COCO17
from trainer.augment import TopDownTransform, add_limb_guides
from trainer.config import load_config
from trainer.datasets import build_datasets
from trainer.datasets.base import JointsDataset
from trainer.datasets.coco import load_coco_people
from trainer.synth import cli

SIZE, HEATMAP, SIGMA, PEAK = (128, 160), (32, 40), 2.0, 0.5
PAIRS = ("left_knee:left_ankle", "right_knee:right_ankle")
J = {name: i for i, name in enumerate(COCO17.joints)}
CONFIGS = Path(__file__).parents[1] / "trainer" / "configs" / "synthetic"


@pytest.fixture(scope="module")
def stills(tmp_path_factory):
    out = tmp_path_factory.mktemp("stills")
    assert cli.main(["images", "--count", "6", "--seed", "21", "--people", "2-4", "--out", str(out)]) == 0
    return load_coco_people(out / "annotations.json", None, COCO17, SIZE)


def transform(guide: float) -> TopDownTransform:
    return TopDownTransform(COCO17, SIZE, HEATMAP, SIGMA, train=True, prob_rotation=0.0, prob_half_body=0.0,
                            limb_guide=guide, limb_guide_pairs=PAIRS)


def peak_cell(heatmap: np.ndarray) -> np.ndarray:
    """(x, y) of the maximum."""
    y, x = np.unravel_index(heatmap.argmax(), heatmap.shape)
    return np.array([x, y], np.float32)


def segment_distance(p, a, b) -> float:
    ab = b - a
    t = np.clip((p - a) @ ab / max(float(ab @ ab), 1e-6), 0, 1)
    return float(np.linalg.norm(p - a - t * ab))


def knee_readings(ds: JointsDataset):
    """For every labelled leg whose other knee lies clear of it (>= 5 heatmap px from the
    knee-ankle segment): (ankle target at its own knee, ankle target at the other knee)."""
    own, other = [], []
    for epoch in range(2):  # two epochs: flipped and unflipped samples both occur
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            s = ds[i]
            target, weight = s["target"].numpy(), s["target_weight"].numpy()[:, 0]
            for side, opposite in (("left", "right"), ("right", "left")):
                knee, ankle, far_knee = J[f"{side}_knee"], J[f"{side}_ankle"], J[f"{opposite}_knee"]
                if min(weight[knee], weight[ankle], weight[far_knee]) <= 0:
                    continue
                k, a, f = peak_cell(target[knee]), peak_cell(target[ankle]), peak_cell(target[far_knee])
                if segment_distance(f, k, a) < 5 or np.linalg.norm(k - a) < 3:
                    continue
                own.append(target[ankle][int(k[1]), int(k[0])])
                other.append(target[ankle][int(f[1]), int(f[0])])
    return np.array(own), np.array(other)


def test_each_ankle_target_reaches_its_own_knee_and_not_the_other(stills):
    own, other = knee_readings(JointsDataset(stills, transform(PEAK), seed=1))
    assert len(own) >= 10
    assert own.min() >= 0.9 * PEAK * np.exp(-0.5 / SIGMA ** 2)  # the ridge starts at the knee cell
    assert other.max() < 0.1
    # without guides (the official targets) an ankle's heatmap is blank at the knees
    plain_own, _ = knee_readings(JointsDataset(stills, transform(0.0), seed=1))
    assert plain_own.max() < 0.1


def test_guides_only_shape_training_targets(tmp_path):
    root = tmp_path / "synth"
    for split, seed in (("train", 3), ("val", 4)):
        assert cli.main(["images", "--count", "2", "--seed", str(seed), "--out", str(root / split)]) == 0
    cfg = load_config(CONFIGS / "lite_w16_160x128_limbguide.yaml", ["DATASET.ROOT", str(root)])
    data = build_datasets(cfg)
    assert data.train.transform.guides == ((J["left_knee"], J["left_ankle"]), (J["right_knee"], J["right_ankle"]))
    assert data.val.transform.guides == ()
    plain = load_config(CONFIGS / "lite_w16_160x128.yaml", ["DATASET.ROOT", str(root)])
    assert build_datasets(plain).train.transform.guides == ()


def test_add_limb_guides_skips_unlabelled_joints():
    target = np.zeros((17, 40, 32), np.float32)
    weight = np.ones((17, 1), np.float32)
    joints = np.zeros((17, 3), np.float32)
    joints[J["left_knee"], :2], joints[J["left_ankle"], :2] = (40, 60), (40, 120)
    weight[J["left_knee"]] = 0
    out = add_limb_guides(target.copy(), weight, joints, ((J["left_knee"], J["left_ankle"]),), np.array([4.0, 4.0]),
                          SIGMA, PEAK)
    assert not out.any()
    weight[J["left_knee"]] = 1
    out = add_limb_guides(target.copy(), weight, joints, ((J["left_knee"], J["left_ankle"]),), np.array([4.0, 4.0]),
                          SIGMA, PEAK)
    assert out[J["left_ankle"], 15:30, 10].min() == pytest.approx(PEAK)  # x 40/4, y 60/4 .. 120/4
    assert out[J["left_ankle"], :, 20].max() < 0.01 and np.count_nonzero(out.sum(axis=(1, 2))) == 1


def test_unknown_guide_joint_is_one_user_error():
    with pytest.raises(UserError, match="LIMB_GUIDE_PAIRS: 'left_knee:left_foot'"):
        TopDownTransform(COCO17, SIZE, HEATMAP, SIGMA, train=True, limb_guide=PEAK,
                         limb_guide_pairs=("left_knee:left_foot",))

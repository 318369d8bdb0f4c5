import json
from pathlib import Path

import numpy as np
import pytest

from engines.pose.schemas import COCO17, MPII16, POSETRACK18, SCHEMAS, get_schema

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.parametrize("schema", list(SCHEMAS.values()), ids=list(SCHEMAS))
def test_flip_pairs_mirror_left_and_right(schema):
    perm = schema.flip_permutation()
    assert sorted(perm) == list(range(schema.num_joints))
    assert np.array_equal(perm[perm], np.arange(schema.num_joints))
    for a, b in schema.flip_pairs:
        left, right = schema.joints[a], schema.joints[b]
        assert {left.split("_")[0], right.split("_")[0]} == {"left", "right"}
        assert left.split("_", 1)[1] == right.split("_", 1)[1]
    unpaired = set(range(schema.num_joints)) - {i for pair in schema.flip_pairs for i in pair}
    assert not any(schema.joints[i].startswith(("left_", "right_")) for i in unpaired)


@pytest.mark.parametrize("schema", list(SCHEMAS.values()), ids=list(SCHEMAS))
def test_skeleton_connects_every_joint(schema):
    used = {i for edge in schema.skeleton for i in edge}
    # COCO's skeleton links every joint; MPII's too.
    assert used == set(range(schema.num_joints))
    assert schema.sigmas_array.shape == (schema.num_joints,)
    assert (schema.sigmas_array > 0).all()


def test_coco_matches_the_coco_sample_categories():
    path = SHARED / "coco_sample" / "test_coco.json"
    if not path.exists():
        pytest.skip("../shared/data/coco_sample is absent")
    category = json.loads(path.read_text())["categories"][0]
    assert tuple(category["keypoints"]) == COCO17.joints
    assert {tuple(sorted((a - 1, b - 1))) for a, b in category["skeleton"]} == {
        tuple(sorted(e)) for e in COCO17.skeleton
    }


def test_posetrack_matches_the_posetrack_sample_categories():
    path = SHARED / "posetrack18_sample" / "annotations" / "val" / "009473_mpii_test.json"
    if not path.exists():
        pytest.skip("../shared/data/posetrack18_sample is absent")
    category = json.loads(path.read_text())["categories"][0]
    assert tuple(category["keypoints"]) == POSETRACK18.joints
    assert [[a + 1, b + 1] for a, b in POSETRACK18.skeleton] == category["skeleton"]


def test_get_schema_names_the_choices():
    assert get_schema("mpii16") is MPII16
    with pytest.raises(ValueError, match="coco17"):
        get_schema("body25")

"""Experiment configs: YAML + typed KEY VALUE overrides, clear errors, round trip."""

from pathlib import Path

import pytest

from engines.errors import UserError
from trainer.config import Config, apply_overrides, config_from_dict, dump_config, load_config
import yaml

CONFIGS = sorted((Path(__file__).parents[1] / "trainer" / "configs").rglob("*.yaml"))


def test_every_shipped_config_loads_and_round_trips(tmp_path):
    assert len(CONFIGS) >= 5
    for path in CONFIGS:
        cfg = load_config(path)
        again = tmp_path / "again.yaml"
        again.write_text(dump_config(cfg))
        assert load_config(again) == cfg, path


def test_official_coco_recipe():
    root = Path(__file__).parents[1] / "trainer" / "configs" / "coco"
    w32, w48 = load_config(root / "w32_256x192.yaml"), load_config(root / "w48_384x288.yaml")
    for cfg in (w32, w48):
        t, d = cfg.TRAIN, cfg.DATASET
        assert (t.OPTIMIZER, t.LR, t.LR_STEP, t.LR_FACTOR, t.END_EPOCH, t.BATCH_SIZE_PER_GPU) == \
            ("adam", 0.001, [170, 200], 0.1, 210, 32)
        assert (d.SCALE_FACTOR, d.ROT_FACTOR, d.PROB_ROTATION, d.PROB_HALF_BODY, d.FLIP) == (0.35, 45, 0.6, 0.3, True)
        assert d.DET_FILE and not cfg.TEST.USE_GT_BBOX and cfg.TEST.FLIP_TEST
    assert (w32.preset().sigma, w48.preset().sigma) == (2.0, 3.0)
    assert w48.preset().image_size == (288, 384)


def test_overrides_are_typed_and_case_insensitive():
    cfg = apply_overrides(Config(), ["TRAIN.LR", "5e-4", "train.lr_step", "[10, 15]", "test.flip_test", "false",
                                     "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.SIGMA", "null", "DATASET.ROOT", "123"])
    assert cfg.TRAIN.LR == 0.0005 and cfg.TRAIN.LR_STEP == [10, 15] and cfg.TEST.FLIP_TEST is False
    assert cfg.MODEL.IMAGE_SIZE == [64, 64] and cfg.MODEL.SIGMA is None
    assert cfg.DATASET.ROOT == "123"  # string fields keep the text as typed


def test_an_input_size_override_names_the_preset_the_tracker_runs_it_with():
    from engines.models.presets import get_preset

    cfg = apply_overrides(Config(), ["MODEL.PRESET", "lite_w16_160x128", "MODEL.IMAGE_SIZE", "[192, 256]"])
    trained = cfg.preset()
    assert trained.name == "lite_w16_256x192"
    assert get_preset(trained.name) == trained


@pytest.mark.parametrize("overrides, message", [
    (["TRAIN.LRR", "1"], "unknown config key 'TRAIN.LRR'"),
    (["TRAIN", "1"], "is a section"),
    (["TRAIN.END_EPOCH", "ten"], "TRAIN.END_EPOCH: expected int, got 'ten'"),
    (["TRAIN.END_EPOCH", "1.5"], "TRAIN.END_EPOCH: expected int"),
    (["TEST.FLIP_TEST", "1"], "TEST.FLIP_TEST: expected bool"),
    (["TRAIN.LR_STEP", "[a, 2]"], "TRAIN.LR_STEP: expected int"),
    (["TRAIN.LR"], "has no value"),
])
def test_bad_overrides_raise_one_clear_error(overrides, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(")):
        apply_overrides(Config(), overrides)


def test_bad_yaml_names_the_file_and_key(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"TRAIN": {"BATCH": 3}}))
    with pytest.raises(UserError, match=r"exp.yaml: unknown config key 'TRAIN.BATCH'"):
        load_config(path)
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(UserError, match="DATASET.NAME: 'imagenet' is not one of"):
        load_config(Path(CONFIGS[0]), ["DATASET.NAME", "imagenet"])
    with pytest.raises(UserError, match="unknown preset"):
        load_config(Path(CONFIGS[0]), ["MODEL.PRESET", "w99"])


def test_from_dict_keeps_defaults_for_missing_keys():
    cfg = config_from_dict({"train": {"lr": 0.01}})
    assert cfg.TRAIN.LR == 0.01 and cfg.TRAIN.END_EPOCH == Config().TRAIN.END_EPOCH

"""Experiment configuration: plain dataclasses, loaded from one YAML file plus `KEY VALUE` overrides.

Keys are dotted section paths in the official HRNet spelling, e.g. `TRAIN.LR 0.0005` or
`DATASET.ROOT data/coco`; lower case is accepted too (`train.lr 5e-4`). Each override value is
read with `yaml.safe_load` (so `[170, 200]`, `true`, `null` work; nothing is ever evaluated) and
then checked against the field's declared type. Unknown keys and wrong types raise UserError
naming the key, before any training work starts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from engines.errors import UserError

__all__ = ["Config", "ModelConfig", "LossConfig", "DatasetConfig", "TrainConfig", "TestConfig",
           "load_config", "apply_overrides", "config_from_dict", "config_to_dict", "dump_config",
           "override_keys", "set_key"]


@dataclass
class ModelConfig:
    KIND: str = "hrnet"                  # hrnet (pose) | centernet (person detector, trainer.detection)
    PRESET: str = "w32_256x192"          # engines.models.presets name: network, input size, sigma
    IMAGE_SIZE: list[int] | None = None  # (w, h) replacing the preset's; heatmaps are 1/4 of it
    EXTRA: dict | None = None            # official MODEL.EXTRA replacing the preset's network
    SIGMA: float | None = None           # Gaussian target sigma replacing the preset's
    NUM_JOINTS: int | None = None        # heatmap count replacing the preset's (MPII: 16)
    PRETRAINED: str = ""                 # weights to start from (any file engines.models.weights loads)
    WIDTHS: list[int] | None = None      # centernet: its 4 encoder widths (default 16, 24, 48, 96)


@dataclass
class LossConfig:
    USE_TARGET_WEIGHT: bool = True
    USE_OHKM: bool = False               # online hard keypoint mining: mean of the TOPK worst joints
    TOPK: int = 8
    USE_DIFFERENT_JOINTS_WEIGHT: bool = False


@dataclass
class DatasetConfig:
    NAME: str = "coco"                   # coco | posetrack18 | mpii | synthetic
    ROOT: str = "data/coco"
    # Paths are relative to ROOT unless absolute. An empty IMAGES folder means "beside the
    # annotation file" (file names inside the annotations are then relative to its folder).
    TRAIN_ANNOTATIONS: str = "annotations/person_keypoints_train2017.json"
    TRAIN_IMAGES: str = "images/train2017"
    VAL_ANNOTATIONS: str = "annotations/person_keypoints_val2017.json"
    VAL_IMAGES: str = "images/val2017"
    DET_FILE: str = ""                   # person detections for validation (COCO results JSON)
    FLIP: bool = True
    SCALE_FACTOR: float = 0.35
    ROT_FACTOR: float = 45.0
    PROB_ROTATION: float = 0.6
    PROB_HALF_BODY: float = 0.3
    NUM_JOINTS_HALF_BODY: int = 8
    # Limb guides (trainer.augment.add_limb_guides): "parent:child" joints whose child target also
    # gets a ridge of height LIMB_GUIDE along the segment from the parent. 0 turns them off.
    LIMB_GUIDE: float = 0.0
    LIMB_GUIDE_PAIRS: list[str] = field(default_factory=lambda: ["left_knee:left_ankle", "right_knee:right_ankle"])
    COLOR_RGB: bool = True


@dataclass
class TrainConfig:
    BATCH_SIZE_PER_GPU: int = 32
    SHUFFLE: bool = True
    END_EPOCH: int = 210
    OPTIMIZER: str = "adam"              # adam | sgd
    LR: float = 0.001
    LR_FACTOR: float = 0.1
    LR_STEP: list[int] = field(default_factory=lambda: [170, 200])
    MOMENTUM: float = 0.9
    WD: float = 0.0
    NESTEROV: bool = False
    AMP: bool = True                     # mixed precision; used only on CUDA
    CHANNELS_LAST: bool = False
    SYNC_BN: bool = False                # convert BatchNorm to SyncBatchNorm under DDP
    VAL_EVERY: int = 1                   # validate every N epochs (and always at the last one)


@dataclass
class TestConfig:
    BATCH_SIZE_PER_GPU: int = 32
    FLIP_TEST: bool = True
    SHIFT_HEATMAP: bool = True
    DECODE: str = "standard"             # standard | dark (engines.pose.codec.decode_heatmaps)
    USE_GT_BBOX: bool = False            # True: validate on ground-truth boxes, not DET_FILE
    IMAGE_THRE: float = 0.0              # drop detections below this score
    IN_VIS_THRE: float = 0.2             # joints above this score count in rescoring
    OKS_THRE: float = 0.9                # OKS-NMS threshold
    SOFT_NMS: bool = False


@dataclass
class Config:
    OUTPUT_DIR: str = "runs"
    WORKERS: int = 2
    PRINT_FREQ: int = 50
    SEED: int = 0
    MODEL: ModelConfig = field(default_factory=ModelConfig)
    LOSS: LossConfig = field(default_factory=LossConfig)
    DATASET: DatasetConfig = field(default_factory=DatasetConfig)
    TRAIN: TrainConfig = field(default_factory=TrainConfig)
    TEST: TestConfig = field(default_factory=TestConfig)

    def preset(self):
        """The engines Preset this config trains, with MODEL overrides applied. An IMAGE_SIZE
        override renames it (`lite_w16_256x192`): the name the tracker's --preset runs it with."""
        from engines.models.presets import get_preset, resized_preset

        base = get_preset(self.MODEL.PRESET)
        if self.MODEL.IMAGE_SIZE:
            base = resized_preset(base, self.MODEL.IMAGE_SIZE)
        return dataclasses.replace(base, extra=self.MODEL.EXTRA or base.extra,
                                   num_joints=self.MODEL.NUM_JOINTS or base.num_joints,
                                   sigma=base.sigma if self.MODEL.SIGMA is None else self.MODEL.SIGMA)


def _is_section(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _describe(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp, key: str) -> Any:
    """`value` checked (and where lossless, converted) against the type hint `tp`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except UserError:
                pass
        raise UserError(f"config key {key}: expected {_describe(tp)}, got {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key {key}: expected a list of {_describe(args[0])}, got {value!r}")
        return [_coerce(v, args[0], key) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is dict:
        if isinstance(value, dict):
            return value
    else:
        raise TypeError(f"unsupported config type {tp} for {key}")
    raise UserError(f"config key {key}: expected {_describe(tp)}, got {value!r}")


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _resolve_key(cls, dotted: str) -> tuple[list[str], Any]:
    """Canonical path (official spelling) and type hint of a dotted key; UserError if unknown."""
    path, tp = [], cls
    for part in dotted.split("."):
        if not _is_section(tp):
            raise UserError(f"unknown config key {dotted!r}: {'.'.join(path)} is not a section")
        hints = _hints(tp)
        name = next((n for n in hints if n.upper() == part.upper()), None)
        if name is None:
            where = ".".join(path) or "top level"
            raise UserError(f"unknown config key {dotted!r} (known at {where}: {', '.join(hints)})")
        path.append(name)
        tp = hints[name]
    return path, tp


def config_from_dict(data: dict, source: str = "config") -> Config:
    """A Config from nested dicts (YAML form); unknown keys and wrong types raise UserError."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of config sections, got {type(data).__name__}")
    cfg = Config()

    def fill(obj, values: dict, prefix: str):
        for key, value in values.items():
            dotted = f"{prefix}{key}"
            path, tp = _resolve_key(Config, dotted)
            if _is_section(tp):
                if not isinstance(value, dict):
                    raise UserError(f"{source}: section {dotted} must be a mapping, got {value!r}")
                fill(getattr(obj, path[-1]), value, dotted + ".")
            else:
                setattr(obj, path[-1], _coerce(value, tp, dotted))

    try:
        fill(cfg, data, "")
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None
    return cfg


def apply_overrides(cfg: Config, overrides: Sequence[str]) -> Config:
    """Apply `KEY VALUE` pairs in place; each VALUE is parsed with yaml.safe_load."""
    if len(overrides) % 2:
        raise UserError(f"overrides come in KEY VALUE pairs; {overrides[-1]!r} has no value")
    for key, text in zip(overrides[::2], overrides[1::2]):
        path, tp = _resolve_key(Config, key)
        if _is_section(tp):
            raise UserError(f"config key {key!r} is a section; set one of its keys")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise UserError(f"config key {key}: cannot read value {text!r}") from None
        if tp is str and not isinstance(value, str):
            value = text  # a folder called 2024 is still a path, not a number
        obj = cfg
        for name in path[:-1]:
            obj = getattr(obj, name)
        setattr(obj, path[-1], _coerce(value, tp, ".".join(path)))
    return cfg


def override_keys(overrides: Sequence[str]) -> set[tuple[str, ...]]:
    """Canonical key paths set by `KEY VALUE` overrides, e.g. {("TRAIN", "LR")}."""
    return {tuple(_resolve_key(Config, key)[0]) for key in overrides[::2]}


def set_key(cfg: Config, path: Sequence[str], value: Any) -> None:
    """Set one field by its canonical path, with the same type check as overrides."""
    canonical, tp = _resolve_key(Config, ".".join(path))
    obj = cfg
    for name in canonical[:-1]:
        obj = getattr(obj, name)
    setattr(obj, canonical[-1], _coerce(value, tp, ".".join(canonical)))


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML experiment file and apply overrides; UserError for any problem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    cfg = apply_overrides(config_from_dict(data, str(path)), overrides)
    check_config(cfg)
    return cfg


def check_config(cfg: Config) -> None:
    """Value checks the types cannot express."""
    choices = {"MODEL.KIND": (cfg.MODEL.KIND, ("hrnet", "centernet")),
               "DATASET.NAME": (cfg.DATASET.NAME, ("coco", "posetrack18", "mpii", "synthetic")),
               "TRAIN.OPTIMIZER": (cfg.TRAIN.OPTIMIZER, ("adam", "sgd")),
               "TEST.DECODE": (cfg.TEST.DECODE, ("standard", "dark"))}
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise UserError(f"config key {key}: {value!r} is not one of {', '.join(allowed)}")
    positive = {"TRAIN.BATCH_SIZE_PER_GPU": cfg.TRAIN.BATCH_SIZE_PER_GPU,
                "TEST.BATCH_SIZE_PER_GPU": cfg.TEST.BATCH_SIZE_PER_GPU,
                "TRAIN.END_EPOCH": cfg.TRAIN.END_EPOCH, "TRAIN.VAL_EVERY": cfg.TRAIN.VAL_EVERY,
                "TRAIN.LR": cfg.TRAIN.LR}
    for key, value in positive.items():
        if value <= 0:
            raise UserError(f"config key {key} must be > 0, got {value}")
    if not 0.0 <= cfg.DATASET.LIMB_GUIDE < 1.0:
        raise UserError(f"config key DATASET.LIMB_GUIDE must be in [0, 1), got {cfg.DATASET.LIMB_GUIDE}")
    if cfg.WORKERS < 0:
        raise UserError(f"config key WORKERS must be >= 0, got {cfg.WORKERS}")
    if cfg.MODEL.IMAGE_SIZE is not None and len(cfg.MODEL.IMAGE_SIZE) != 2:
        raise UserError(f"config key MODEL.IMAGE_SIZE must be [width, height], got {cfg.MODEL.IMAGE_SIZE}")
    if cfg.MODEL.WIDTHS is not None and (len(cfg.MODEL.WIDTHS) != 4 or min(cfg.MODEL.WIDTHS) < 1):
        raise UserError(f"config key MODEL.WIDTHS must be 4 positive widths, got {cfg.MODEL.WIDTHS}")
    if cfg.MODEL.KIND == "hrnet":
        cfg.preset()  # unknown preset names and sizes that are not multiples of 32 fail here


def config_to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def dump_config(cfg: Config) -> str:
    """YAML text that load_config reads back to an equal Config."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None)

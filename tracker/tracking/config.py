"""Tracker settings: `TrackerConfig`, the checks on its values, and loading it from YAML.

`default_tracker.yaml` beside this module is the one list of the settings, their defaults and
what each means: TrackerConfig reads its defaults from it. It is also the file to start from, as
Ultralytics ships `bytetrack.yaml`: copy it, change what you need, pass it with
`python -m tracker --tracker FILE.yaml`. A file sets only what it says: a key it leaves out or sets
to null takes the run's own value where the run has one (`base`: the detector's calibrated score
thresholds), else the default. Unknown keys and bad values are refused with one line that names
the file.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import get_args, get_type_hints

import numpy as np
import yaml

from engines.errors import UserError
from engines.pose.schemas import SCHEMAS

__all__ = ["TrackerConfig", "load_tracker_config", "read_tracker_settings", "DEFAULT_TRACKER_YAML",
           "UNCALIBRATED_SCORES"]

DEFAULT_TRACKER_YAML = Path(__file__).with_name("default_tracker.yaml")
_DEFAULTS = yaml.safe_load(DEFAULT_TRACKER_YAML.read_text(encoding="utf-8"))

# The score thresholds where neither a file nor the detector's calibration sets them (the YOLOX
# models, a detector file): for YOLO-like scores; 0.3 is YOLO's own floor, which such runs always
# had in effect
UNCALIBRATED_SCORES = {"high_score": 0.5, "low_score": 0.3, "new_track_score": 0.6}


def _setting(name: str, low: float | None = None, high: float | None = None, above: float | None = None):
    """The field `name` with its default from default_tracker.yaml; its value must lie in
    [low, high] and, with `above`, exceed it."""
    return field(default=_DEFAULTS[name], metadata={"low": low, "high": high, "above": above})


@dataclass
class TrackerConfig:
    """The tracker's settings: what each means and its default are in default_tracker.yaml.
    Checked when made: a wrong type, a number that is not finite or a value out of range is a
    UserError. Score thresholds left None take UNCALIBRATED_SCORES."""

    schema: str | None = _setting("schema")
    high_score: float | None = _setting("high_score", 0, 1)
    low_score: float | None = _setting("low_score", 0, 1)
    new_track_score: float | None = _setting("new_track_score", 0, 1)
    min_similarity: float = _setting("min_similarity", 0, 1)
    low_min_similarity: float = _setting("low_min_similarity", 0, 1)
    oks_weight: float = _setting("oks_weight", 0, 1)
    duplicate_oks: float = _setting("duplicate_oks", 0, 1)
    contested_oks: float = _setting("contested_oks", 0, 1)
    joint_score_thresh: float = _setting("joint_score_thresh", 0, 1)
    flip_robust: bool = _setting("flip_robust")
    min_hits: int = _setting("min_hits", low=1)
    lost_buffer: int = _setting("lost_buffer", low=0)
    output_coast_frames: int = _setting("output_coast_frames", low=0)
    joint_coast_frames: int = _setting("joint_coast_frames", low=0)
    reid_seconds: float = _setting("reid_seconds", low=0)
    reid_max_distance: float = _setting("reid_max_distance", above=0)
    frame_period: float | None = _setting("frame_period", above=0)
    box_noise: float = _setting("box_noise", above=0)
    keypoint_noise: float = _setting("keypoint_noise", above=0)
    accel_noise: float = _setting("accel_noise", above=0)
    pose_accel_noise: float = _setting("pose_accel_noise", above=0)
    velocity_init: float = _setting("velocity_init", above=0)
    pose_refresh_frames: int = _setting("pose_refresh_frames", low=1)
    pose_refresh_motion: float = _setting("pose_refresh_motion", above=0)

    def __post_init__(self):
        hints = get_type_hints(TrackerConfig)
        for f in fields(self):
            value = _checked_type(f.name, getattr(self, f.name), hints[f.name])
            if value is None and f.name in UNCALIBRATED_SCORES:
                value = UNCALIBRATED_SCORES[f.name]
            setattr(self, f.name, value)
            if value is not None:
                _check_range(f.name, value, **f.metadata)
        if self.schema is not None and self.schema not in SCHEMAS:
            raise UserError(f"tracker setting schema must be one of {', '.join(SCHEMAS)}, got {self.schema!r}")
        if self.low_score > self.high_score:
            raise UserError(f"tracker setting low_score ({self.low_score}) must not exceed high_score "
                            f"({self.high_score})")


def _checked_type(name: str, value, hint):
    """The value as its field's type (an int where a float is due becomes a float), or a UserError."""
    kinds = [k for k in (get_args(hint) or (hint,)) if k is not type(None)]
    kind, optional = kinds[0], len(kinds) < len(get_args(hint) or (hint,))
    if value is None and optional:
        return None
    is_bool = isinstance(value, (bool, np.bool_))
    if kind is bool and is_bool:
        return bool(value)
    if kind is int and isinstance(value, numbers.Integral) and not is_bool:
        return int(value)
    if kind is float and isinstance(value, numbers.Real) and not is_bool:
        if not math.isfinite(value):
            raise UserError(f"tracker setting {name} must be a finite number, got {value}")
        return float(value)
    if kind is str and isinstance(value, str):
        return value
    expected = {bool: "true or false", int: "a whole number", float: "a number", str: "a name"}[kind]
    hint_text = ""
    if kind is float and isinstance(value, str):
        try:
            float(value)
            hint_text = " (YAML reads 1e-2 as text: write 0.01 or 1.0e-2)"
        except ValueError:
            pass
    raise UserError(f"tracker setting {name} must be {expected}{' or null' if optional else ''}, "
                    f"got {value!r}{hint_text}")


def _check_range(name: str, value, low=None, high=None, above=None) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if high is not None else f"{low} or more"
        raise UserError(f"tracker setting {name} must be {bounds}, got {value}")
    if above is not None and not value > above:
        raise UserError(f"tracker setting {name} must be more than {above}, got {value}")


def read_tracker_settings(path: str | Path) -> dict:
    """The `KEY: VALUE` settings of a YAML file (any subset of TrackerConfig's fields), each
    checked; a UserError naming the file otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"cannot read tracker settings {path}: {reason}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected KEY: VALUE lines of tracker settings, got a {type(data).__name__}")
    known = [f.name for f in fields(TrackerConfig)]
    unknown = [str(key) for key in data if key not in known]
    if unknown:
        raise UserError(f"{path}: unknown tracker setting {unknown[0]!r}; known: {', '.join(known)}")
    _config(data, {}, path)
    return data


def load_tracker_config(settings: str | Path | dict | None = None, base: dict | None = None) -> TrackerConfig:
    """TrackerConfig from a YAML file (or the dict `read_tracker_settings` read from one); keys
    it leaves out or sets to null (all of them when None) take `base`'s values (e.g. a detector's
    calibrated score thresholds), then the defaults."""
    if settings is None or isinstance(settings, dict):
        return _config(settings or {}, base or {}, None)
    return _config(read_tracker_settings(settings), base or {}, settings)


def _config(settings: dict, base: dict, path) -> TrackerConfig:
    merged = dict(settings)
    for key, value in base.items():
        if merged.get(key) is None:
            merged[key] = value
    try:
        return TrackerConfig(**merged)
    except UserError as exc:
        raise UserError(f"{path}: {exc}" if path is not None else str(exc)) from None

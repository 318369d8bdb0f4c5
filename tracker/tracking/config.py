"""Tracker settings: `TrackerConfig`, the checks on its values, and loading it from YAML.

The defaults ship beside this module as `default_tracker.yaml` (a test keeps the two equal), as
Ultralytics ships `bytetrack.yaml`: copy it, change what you need, pass it with
`python -m tracker --tracker FILE.yaml`. A file may set only some keys; the rest keep their
defaults. Unknown keys and bad values are refused with one line that names the file.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import get_args, get_type_hints

import numpy as np
import yaml

from engines.errors import UserError
from engines.pose.schemas import SCHEMAS

__all__ = ["TrackerConfig", "load_tracker_config", "read_tracker_settings", "DEFAULT_TRACKER_YAML"]

DEFAULT_TRACKER_YAML = Path(__file__).with_name("default_tracker.yaml")


def _within(default, low: float | None = None, high: float | None = None, above: float | None = None):
    """A setting whose value must lie in [low, high] and, with `above`, exceed it."""
    return field(default=default, metadata={"low": low, "high": high, "above": above})


@dataclass
class TrackerConfig:
    """The tracker's settings (default_tracker.yaml lists the same defaults). Checked when made:
    a wrong type or a value out of range is a UserError. Scores and similarities are in [0, 1];
    noise levels are fractions of the person's box height."""

    schema: str | None = None                            # joint order; None: the pose model's (coco17 standalone)
    high_score: float = _within(0.5, 0, 1)               # detections at or above take part in the first stage
    low_score: float = _within(0.3, 0, 1)                # below this the detector keeps no box (0.3: YOLO's
                                                         # own floor, which such runs always had in effect)
    new_track_score: float = _within(0.6, 0, 1)          # an unmatched detection at or above starts a track
    min_similarity: float = _within(0.3, 0, 1)           # gate of the first and third stages
    low_min_similarity: float = _within(0.5, 0, 1)       # gate of the low-score stage (stricter)
    oks_weight: float = _within(0.5, 0, 1)               # similarity = w * OKS + (1 - w) * IoU
    duplicate_oks: float = _within(0.7, 0, 1)            # detections whose poses match above this are one person (1: off)
    contested_oks: float = _within(0.15, 0, 1)           # a box over a better one (IoU > 0.5) stays if its pose matches none up to this (1: off)
    joint_score_thresh: float = _within(0.2, 0, 1)       # joints below are left out of OKS and filter updates
    flip_robust: bool = True                             # also try detections left/right-swapped; fix if better
    min_hits: int = _within(3, low=1)                    # consecutive hits before a track is confirmed (first frame: at once)
    lost_buffer: int = _within(30, low=0)                # frames a lost track is kept for recovery
    output_coast_frames: int = _within(0, low=0)         # lost tracks are reported (predicted) this many frames
    joint_coast_frames: int = _within(15, low=0)         # an unmeasured joint is reported as predicted this many frames, then hidden
    reid_seconds: float = _within(5.0, low=0)            # a person lost or gone this long ago who comes back gets their id (0: off)
    reid_max_distance: float = _within(15.0, above=0)    # clothing colour distance (Lab) below which they are taken for the same
    frame_period: float | None = _within(None, above=0)  # seconds per frame; None: the source's (1/30 standalone)
    box_noise: float = _within(0.03, above=0)            # box measurement std
    keypoint_noise: float = _within(0.01, above=0)       # keypoint measurement std at joint score 1
    accel_noise: float = _within(0.01, above=0)          # box and pose-centre acceleration std per frame^2
    pose_accel_noise: float = _within(0.003, above=0)    # acceleration std of the joints' offsets from the centre
    velocity_init: float = _within(0.05, above=0)        # initial velocity std per frame

    def __post_init__(self):
        hints = get_type_hints(TrackerConfig)
        for f in fields(self):
            value = _checked_type(f.name, getattr(self, f.name), hints[f.name])
            setattr(self, f.name, value)
            if value is not None and f.metadata:
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
    it leaves out (all of them when None) take `base`'s values (e.g. a detector's calibrated
    score thresholds), then the defaults."""
    if settings is None or isinstance(settings, dict):
        return _config(settings or {}, base or {}, None)
    return _config(read_tracker_settings(settings), base or {}, settings)


def _config(settings: dict, base: dict, path) -> TrackerConfig:
    try:
        return TrackerConfig(**{**base, **settings})
    except UserError as exc:
        raise UserError(f"{path}: {exc}" if path is not None else str(exc)) from None

"""Loading pose-network weights from the checkpoint files people actually have.

Accepted files (all read with `torch.load(..., weights_only=True)`):
- official HRNet releases and outputs: `final_state.pth` (a bare state_dict, possibly with the
  `module.` prefix of DataParallel), `model_best.pth`, `checkpoint.pth` (`{'state_dict': ...}`);
- mmpose top-down HRNet checkpoints: `{'state_dict': {'backbone.*', 'keypoint_head.final_layer.*'}}`
  (mmpose 0.x) or `head.final_layer.*` (mmpose 1.x), renamed to the official keys;
- mmpose Lite-HRNet checkpoints, whose key form the Lite-HRNet here keeps (`backbone.*`,
  `keypoint_head.final_layer.*`; 1.x `head.final_layer.*` renamed to it);
- this project's trainer checkpoints (`state_dict` or `model` entry).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch

from engines.errors import UserError

__all__ = ["WeightsError", "load_state_dict_file", "normalize_state_dict", "load_weights",
           "bundled_weights", "ASSETS_DIR"]

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
WRAPPER_KEYS = ("state_dict", "model")  # where checkpoints nest the state_dict
# mmpose key form -> official HRNet key form
MMPOSE_RENAMES = (("backbone.", ""), ("keypoint_head.final_layer.", "final_layer."),
                  ("head.final_layer.", "final_layer."))
# mmpose 1.x -> 0.x key form (networks that keep mmpose's keys: Lite-HRNet)
MMPOSE_1X_RENAMES = (("head.final_layer.", "keypoint_head.final_layer."),)
DROPPED_PREFIXES = ("data_preprocessor.",)  # mmpose 1.x stores its normalisation constants
SHOWN_KEYS = 5  # keys named per list in an error message


class WeightsError(UserError):
    """Weights do not fit the network: missing, unexpected or wrongly shaped keys."""


def load_state_dict_file(path: str | os.PathLike, mmpose_keys: bool = False) -> dict[str, torch.Tensor]:
    """Read a checkpoint file and return its state_dict with official HRNet key names (mmpose's
    0.x key names with `mmpose_keys`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling, zip and truncation errors all mean "not a checkpoint"
        # the first sentence only: torch's messages go on with advice that does not apply here
        first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else ""
        reason = f"{first[:200]} ({type(exc).__name__})" if first else type(exc).__name__
        raise UserError(f"cannot read weights file {path}: {reason}") from None
    try:
        return normalize_state_dict(obj, mmpose_keys)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def normalize_state_dict(obj: Mapping, mmpose_keys: bool = False) -> dict[str, torch.Tensor]:
    """Unwrap a checkpoint's state_dict and rename DataParallel/mmpose keys to official HRNet
    ones, or with `mmpose_keys` keep mmpose's (0.x) form."""
    if not isinstance(obj, Mapping):
        raise UserError(f"not a checkpoint: holds a {type(obj).__name__}, not a dict of tensors")
    for key in WRAPPER_KEYS:
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    state = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise UserError(f"not a state_dict: entry {key!r} is a {type(value).__name__}")
        if not str(key).startswith(DROPPED_PREFIXES):
            state[str(key).removeprefix("module.")] = value
    if mmpose_keys:
        return {rename(k, MMPOSE_1X_RENAMES): v for k, v in state.items()}
    if any(k.startswith("backbone.") for k in state):
        state = {rename(k, MMPOSE_RENAMES): v for k, v in state.items()}
    return state


def rename(key: str, renames) -> str:
    """`key` with the first matching (old prefix, new prefix) of `renames` applied."""
    for old, new in renames:
        if key.startswith(old):
            return new + key[len(old):]
    return key


def load_weights(model: torch.nn.Module, weights: str | os.PathLike | Mapping) -> torch.nn.Module:
    """Load a checkpoint path or state_dict into `model` in place and return the model.

    BatchNorm `num_batches_tracked` counters are ignored when missing or extra (released files
    differ in whether they keep them, and eval never reads them). Anything else that does not
    fit raises WeightsError naming the keys."""
    own = model.state_dict()
    mmpose_keys = any(k.startswith("backbone.") for k in own)  # the network keeps mmpose's key form
    if isinstance(weights, Mapping):
        source, state = "state_dict", normalize_state_dict(weights, mmpose_keys)
    else:
        source, state = str(weights), load_state_dict_file(weights, mmpose_keys)
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own and not k.endswith("num_batches_tracked")]
    wrong = [f"{k} {list(state[k].shape)} vs {list(own[k].shape)}"
             for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = [describe(missing, "missing"), describe(unexpected, "unexpected"),
                 describe(wrong, "wrongly shaped (file vs network)")]
        raise WeightsError(f"weights {source} do not fit the {type(model).__name__} "
                           f"({len(own)} keys): " + "; ".join(p for p in parts if p))
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return model


def describe(keys: list[str], what: str) -> str:
    """'3 missing: a, b, c' with at most SHOWN_KEYS names and a count of the rest."""
    if not keys:
        return ""
    shown = ", ".join(keys[:SHOWN_KEYS])
    rest = f", ... (+{len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else ""
    return f"{len(keys)} {what}: {shown}{rest}"


def bundled_weights(name: str) -> Path:
    """Path of the weights shipped in engines/assets/ for preset `name` (`<name>.pth`)."""
    path = ASSETS_DIR / f"{name}.pth"
    if not path.is_file():
        available = sorted(p.stem for p in ASSETS_DIR.glob("*.pth")) if ASSETS_DIR.is_dir() else []
        raise UserError(f"no bundled weights for {name!r}; bundled: {', '.join(available) or 'none'}")
    return path

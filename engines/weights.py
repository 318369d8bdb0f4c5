"""Loading pose-network weights from the checkpoint files people actually have.

Accepted files (all read with `torch.load(..., weights_only=True)`):
- official HRNet releases and outputs: `final_state.pth` (a bare state_dict, possibly with the
  `module.` prefix of DataParallel), `model_best.pth`, `checkpoint.pth` (`{'state_dict': ...}`);
- mmpose top-down HRNet checkpoints: `{'state_dict': {'backbone.*', 'keypoint_head.final_layer.*'}}`
  (mmpose 0.x) or `head.final_layer.*` (mmpose 1.x), renamed to the official keys;
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

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
WRAPPER_KEYS = ("state_dict", "model")  # where checkpoints nest the state_dict
MMPOSE_RENAMES = (("backbone.", ""), ("keypoint_head.final_layer.", "final_layer."),
                  ("head.final_layer.", "final_layer."))
SHOWN_KEYS = 5  # keys named per list in an error message


class WeightsError(UserError):
    """Weights do not fit the network: missing, unexpected or wrongly shaped keys."""


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file and return its state_dict with official HRNet key names."""
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
        return normalize_state_dict(obj)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def normalize_state_dict(obj: Mapping) -> dict[str, torch.Tensor]:
    """Unwrap a checkpoint's state_dict and rename DataParallel/mmpose keys to official ones."""
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
        state[str(key).removeprefix("module.")] = value
    if any(k.startswith("backbone.") for k in state):
        state = {rename_mmpose(k): v for k, v in state.items()}
    return state


def rename_mmpose(key: str) -> str:
    for old, new in MMPOSE_RENAMES:
        if key.startswith(old):
            return new + key[len(old):]
    return key


def load_weights(model: torch.nn.Module, weights: str | os.PathLike | Mapping) -> torch.nn.Module:
    """Load a checkpoint path or state_dict into `model` in place and return the model.

    BatchNorm `num_batches_tracked` counters are ignored when missing or extra (released files
    differ in whether they keep them, and eval never reads them). Anything else that does not
    fit raises WeightsError naming the keys."""
    if isinstance(weights, Mapping):
        source, state = "state_dict", normalize_state_dict(weights)
    else:
        source, state = str(weights), load_state_dict_file(weights)
    own = model.state_dict()
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

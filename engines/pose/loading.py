"""`load_pose(name)`: a ready PoseEstimator from a catalogue name or a checkpoint file, beside
`engines.detectors.load_detector(name)`.

A catalogue name brings its architecture, weights (bundled, or fetched and verified on first
use), input normalisation and its family's decode rule. A checkpoint file (official HRNet,
mmpose, or this project's trainer) runs with `preset`, or, without one, with the preset whose
network its keys and shapes fit (the smallest input size where several sizes share a network),
and with the decode rule of the code that wrote it: mmpose's for mmpose's key form, the
official HRNet one otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from engines.errors import UserError
from engines.models.catalogue import CATALOGUE, names
from engines.models.presets import PRESETS, Preset, build_network, get_preset
from engines.models.weights import load_state_dict_file, normalize_state_dict

__all__ = ["load_pose", "infer_preset"]


def load_pose(name: str | os.PathLike, preset: str | None = None, *, backend: str | None = None,
              device: str = "cpu", decode: str = "dark", cache: str | os.PathLike | None = None, **options):
    """A PoseEstimator for catalogue model `name` or a checkpoint path.

    `preset` is for checkpoint files only. backend None: `default_backend(device)`. decode: "dark"
    (sub-pixel, the tracker's default) or "standard" (the publisher's own). Other keyword options
    go to PoseEstimator (half, flip_test, batch_profile, threads, ...)."""
    from engines.hub.cache import model_file
    from engines.pose.estimator import PoseEstimator

    if preset is not None:
        get_preset(preset)  # a typo fails here, whatever `name` is
    model = CATALOGUE.get(str(name))
    if model is not None and model.task == "pose":
        if preset is not None and preset != model.preset:
            raise UserError(f"--preset {preset} applies to a checkpoint file; {name} is a catalogue "
                            f"model with its own preset ({model.preset})")
        chosen, weights = model.preset, model_file(model, cache)
        processing = {"decode_rule": model.decode_rule, "mean": model.mean, "std": model.std}
    else:
        path = Path(name).expanduser()
        if not path.is_file():
            raise UserError(f"{name}: no such file and not a pose model ({', '.join(names('pose'))})")
        weights = load_state_dict_file(path, mmpose_keys=True)
        written_by_mmpose = any(k.startswith("backbone.") for k in weights)
        if not any(k.startswith("backbone.stem.") for k in weights):  # not a Lite-HRNet: official keys
            weights = normalize_state_dict(weights)
        chosen = preset or infer_preset(weights, path)
        processing = {"decode_rule": "mmpose" if written_by_mmpose else "hrnet"}
    return PoseEstimator(chosen, weights, backend=backend, device=device, decode=decode,
                         **processing, **options)


def infer_preset(state: dict[str, torch.Tensor], source: str | os.PathLike = "weights") -> Preset:
    """The first preset (catalogue order: smaller inputs first) whose network has exactly the keys
    and shapes of `state` (BatchNorm counters aside)."""
    wanted = _signature(state)
    seen = set()
    for preset in PRESETS.values():
        key = (preset.network, repr(preset.extra), preset.num_joints)
        if key in seen:
            continue
        seen.add(key)
        with torch.device("meta"):   # shapes only: no memory, no initialisation cost
            network = build_network(preset)
        if _signature(network.state_dict()) == wanted:
            return preset
    raise UserError(f"{source}: the weights fit none of the presets ({', '.join(PRESETS)}); "
                    "give --preset, or check that the file is a pose checkpoint")


def _signature(state) -> set[tuple[str, tuple[int, ...]]]:
    return {(k, tuple(v.shape)) for k, v in state.items() if not k.endswith("num_batches_tracked")}

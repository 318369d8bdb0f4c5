"""Growing a trained network into a wider one of the same layout (Net2Net's idea, Chen et al.
2016): `MODEL.PRETRAINED` of a narrower network starts a wider one computing exactly what the
narrow one did, so training adds capacity without starting over."""

from __future__ import annotations

import torch

__all__ = ["widened"]


def widened(state: dict, model: torch.nn.Module) -> dict:
    """`state` grown to `model`'s shapes where it is narrower (the same layout, fewer channels),
    without changing what it computes: each old tensor fills the leading slice of the new one,
    the new channels keep `model`'s fresh init, and every weight reading a new input channel
    starts at zero, so the new channels join in as training moves those weights. Keys that fit
    already, or fit in no way, stay as they are (load_weights names the misfits)."""
    own = model.state_dict()
    grown = dict(state)
    for key, old in state.items():
        fresh = own.get(key)
        if fresh is None or old.shape == fresh.shape or old.dim() != fresh.dim() \
                or any(o > f for o, f in zip(old.shape, fresh.shape)):
            continue
        new = fresh.clone()
        if new.dim() == 4:
            new[:, old.shape[1]:] = 0
        new[tuple(slice(0, n) for n in old.shape)] = old
        grown[key] = new
    return grown

"""`python -m trainer bundle WEIGHTS --out FILE`: a trained checkpoint as a small shipped file.

Keeps only the state_dict (official key names, `module.` prefixes dropped) and stores floating
tensors in fp16, which halves the file; engines loads it back into fp32 parameters. The file is
written atomically and checked by loading it the way engines does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from engines.errors import UserError
from engines.common.files import save_torch_atomic
from engines.models.weights import load_state_dict_file

__all__ = ["main", "to_half"]


def to_half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors in fp16; integer ones (BatchNorm's num_batches_tracked) unchanged."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer bundle",
                                     description="Write a trained checkpoint as an fp16 state_dict to ship.")
    parser.add_argument("weights", type=Path, help="final_state.pth, model_best.pth or checkpoint.pth")
    parser.add_argument("--out", type=Path, required=True, help="file to write, e.g. engines/assets/NAME.pth")
    args = parser.parse_args(argv)
    state = to_half(load_state_dict_file(args.weights))
    try:
        save_torch_atomic(state, args.out)
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    size = args.out.stat().st_size / 2**20
    print(f"wrote {args.out} ({len(state)} tensors, {size:.2f} MiB, fp16)")
    return 0

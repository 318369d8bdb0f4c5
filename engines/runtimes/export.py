"""ONNX export of a pose network with a dynamic batch axis, as one self-contained file.

    python -m engines export --preset NAME [--weights FILE] --out model.onnx
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import os
import warnings
from pathlib import Path
from typing import Sequence

import torch

from engines.common.files import atomic_path
from engines.errors import UserError, run_cli

__all__ = ["export_onnx", "main", "INPUT_NAME", "OUTPUT_NAME"]

INPUT_NAME = "images"
OUTPUT_NAME = "heatmaps"


def export_onnx(model: torch.nn.Module, image_size: tuple[int, int], path: str | os.PathLike,
                opset: int | None = None) -> Path:
    """Write `model` (eval mode, CPU, fp32) as ONNX: input `images` (B,3,H,W) with B dynamic,
    output `heatmaps` (B,J,H/4,W/4). Weights are embedded (one file); the graph is checked with
    onnx.checker. The file appears atomically."""
    import onnx

    width, height = image_size
    model = copy.deepcopy(model).eval().float().cpu()  # leave the caller's device and dtype alone
    example = torch.zeros(2, 3, height, width)  # batch 2: a batch of 1 could be specialised
    batch = torch.export.Dim("batch", min=1, max=4096)
    target = Path(path)
    with atomic_path(target) as tmp:
        with quiet_exporter():
            torch.onnx.export(model, (example,), tmp, dynamo=True, external_data=False,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_shapes=({0: batch},), opset_version=opset, verbose=False)
        onnx.checker.check_model(str(tmp), full_check=True)
    return target


@contextlib.contextmanager
def quiet_exporter():
    """Silence the exporter's deprecation warnings and 'torchvision is not installed' log lines."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engines export",
                                     description="Export a pose network (HRNet, Lite-HRNet) to ONNX.")
    parser.add_argument("--preset", required=True, help="preset name, e.g. w32_256x192")
    parser.add_argument("--weights", help="checkpoint (official, mmpose or this project's); "
                                          "random weights when omitted")
    parser.add_argument("--out", required=True, help="output .onnx file")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (exporter default)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from engines.models.presets import build_network, get_preset
    from engines.models.weights import load_weights

    args = build_parser().parse_args(argv)
    preset = get_preset(args.preset)
    model = build_network(preset)
    if args.weights:
        load_weights(model, args.weights)
    try:
        out = export_onnx(model, preset.image_size, args.out, opset=args.opset)
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {out} ({preset.name}, input Bx3x{preset.image_size[1]}x{preset.image_size[0]}, "
          f"dynamic batch, {out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="engines export"))

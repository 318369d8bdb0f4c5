"""`python -m tracker eval --gt DIR --pred DIR [--json]`: PoseTrack mAP / MOTA table like poseval's, plus HOTA."""

from __future__ import annotations

import argparse
import json
import math

from tracker.evaluate.evaluate import GROUP_NAMES, HOTA_NAMES, evaluate_folders


def _row(label: str, values: dict[str, float]) -> str:
    cells = "".join(f"{'nan' if math.isnan(values[g]) else f'{values[g]:.1f}':>7}" for g in GROUP_NAMES)
    return f"{label:<6}{cells}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracker eval",
                                     description="PoseTrack evaluation: mAP, MOTA (poseval), HOTA, DetA, AssA, LocA "
                                                 "(PoseTrack21), IDF1, the joints' acceleration error and lag.")
    parser.add_argument("--gt", required=True, help="folder of ground-truth sequence JSON files")
    parser.add_argument("--pred", required=True, help="folder of prediction JSON files with the same names")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args(argv)
    result = evaluate_folders(args.gt, args.pred)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{result.num_sequences} sequences, {result.num_frames} labelled frames")
    print(f"{'':<6}" + "".join(f"{g:>7}" for g in GROUP_NAMES))
    for key in ("mAP", "MOTA", "MOTP", "IDF1", *HOTA_NAMES):
        print(_row(key, summary[key]))
    print(_row("Accel", summary["accel_error"]) + "   px/frame^2: the joints' acceleration error (jitter)")
    print(f"ID switches (all joints): {summary['id_switches']}")
    print(f"Lag: {summary['lag_frames']:.2f} frames (the shift that best aligns the joints with the truth)")
    return 0

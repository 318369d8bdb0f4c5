"""`python -m engines VERB ...`: `export` a pose network to ONNX, `bench` backends, check their
accuracy `parity` with torch FP32, `fetch` models, `calibrate` a detector's score thresholds for the
tracker."""

from __future__ import annotations

import sys

from engines.errors import UserError, run_cli

# verb -> (module exposing main(argv) -> int, what it does)
VERBS = {
    "export": ("engines.runtimes.export", "export a pose network (HRNet, Lite-HRNet) to ONNX"),
    "bench": ("engines.tools.bench", "time pose runtimes, detectors and detector + pose per frame"),
    "parity": ("engines.tools.parity", "check each runtime's keypoints and AP against torch FP32"),
    "fetch": ("engines.hub.cache", "download catalogue models into the cache; --list shows the catalogue"),
    "calibrate": ("engines.tools.calibrate", "derive a detector's tracker score thresholds from held-out people"),
}


def main(argv=None) -> int:
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print("usage: python -m engines VERB ... (python -m engines VERB --help for each)\n\nverbs:")
        for verb, (_, what) in VERBS.items():
            print(f"  {verb:10s} {what}")
        return 0
    if not argv or argv[0] not in VERBS:
        raise UserError(f"usage: python -m engines {{{','.join(VERBS)}}} ... (-h for help on each)")
    return importlib.import_module(VERBS[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="engines"))

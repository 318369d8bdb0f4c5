"""`python -m engines VERB ...`: `export` a pose network to ONNX, `bench` backends, check their
accuracy `parity` with torch FP32, `fetch` models."""

from __future__ import annotations

import sys

from engines.errors import UserError, run_cli

# verb -> module exposing main(argv) -> int
VERBS = {
    "export": "engines.export",
    "bench": "engines.bench",
    "parity": "engines.parity",
    "fetch": "engines.registry",
}


def main(argv=None) -> int:
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in VERBS:
        raise UserError(f"usage: python -m engines {{{','.join(VERBS)}}} ... (-h for help on each)")
    return importlib.import_module(VERBS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="engines"))

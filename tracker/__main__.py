"""`python -m tracker [VERB] ...`: track people live or in files; `eval`, `bench` and `batch` verbs."""

from __future__ import annotations

import sys

from engines.errors import run_cli

# verb -> module exposing main(argv) -> int; no verb runs the tracking application itself.
VERBS = {
    "eval": "tracker.evaluate.cli",
    "bench": "tracker.bench",
    "batch": "tracker.batch",
}
APP = "tracker.app"


def main(argv=None) -> int:
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in VERBS:
        return importlib.import_module(VERBS[argv[0]]).main(argv[1:])
    return importlib.import_module(APP).main(argv)


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="tracker"))

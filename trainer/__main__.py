"""`python -m trainer --cfg FILE [KEY VALUE ...]` trains; `python -m trainer synth ...` makes synthetic people;
`bundle` ships weights; `merge` joins annotation files."""

from __future__ import annotations

import sys

from engines.errors import run_cli

# verb -> module exposing main(argv) -> int; no verb trains.
VERBS = {
    "synth": "trainer.synth.cli",
    "bundle": "trainer.bundle",
    "merge": "trainer.merge",
}
TRAIN = "trainer.train_cli"


def main(argv=None) -> int:
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in VERBS:
        return importlib.import_module(VERBS[argv[0]]).main(argv[1:])
    return importlib.import_module(TRAIN).main(argv)


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="trainer"))

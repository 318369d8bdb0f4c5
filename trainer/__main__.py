"""`python -m trainer --cfg FILE [KEY VALUE ...]` trains; `python -m trainer synth ...` makes synthetic people;
`bundle` ships weights; `merge` joins annotation files."""

from __future__ import annotations

import argparse
import sys

from engines.errors import run_cli

# verb -> (module exposing main(argv) -> int, what it does); no verb trains.
VERBS = {
    "synth": ("trainer.synth.cli", "synthetic people with exact ground truth (images, videos, demo, bench)"),
    "bundle": ("trainer.bundle", "ship a trained checkpoint as the tracker's bundled weights"),
    "merge": ("trainer.merge", "join COCO annotation files"),
}
TRAIN = "trainer.train_cli"


def main(argv=None) -> int:
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in VERBS:
        return importlib.import_module(VERBS[argv[0]][0]).main(argv[1:])
    train = importlib.import_module(TRAIN)
    if "-h" in argv or "--help" in argv:
        # the training options, then the verbs, which the training parser does not know
        parser = train.build_parser()
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = "other verbs (each takes --help):\n" + "\n".join(
            f"  python -m trainer {verb:7s}{what}" for verb, (_, what) in VERBS.items())
        parser.print_help()
        return 0
    return train.main(argv)


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="trainer"))

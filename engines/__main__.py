"""`python -m engines VERB ...`: export a pose network to ONNX, benchmark backends, fetch models."""

from __future__ import annotations

import argparse
import importlib
import sys

from engines.errors import run_cli

# verb -> module exposing add_arguments(parser) and run(args) -> int
VERBS = {
    "export": ("engines.export", "export a pose network to ONNX with a dynamic batch axis"),
    "bench": ("engines.bench", "crops per second per backend, preset and batch size"),
    "fetch": ("engines.registry", "download a registered model into the user cache"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True)
    modules = {}
    for verb, (module_name, help_text) in VERBS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(verb, help=help_text, description=help_text))
        modules[verb] = module
    args = parser.parse_args(argv)
    return modules[args.verb].run(args)


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="engines"))

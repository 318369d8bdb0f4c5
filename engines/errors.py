"""The command-line error convention: a user mistake is one clear line and exit code 2."""

from __future__ import annotations

import sys
from typing import Callable, Sequence

__all__ = ["UserError", "run_cli"]


class UserError(Exception):
    """A problem the user can fix (bad path, bad value, missing file). Printed as one line."""


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None,
            prog: str = "") -> int:
    """Run `main(argv)`; turn UserError and Ctrl+C into one line on stderr and a non-zero exit."""
    try:
        return int(main(argv) or 0)
    except UserError as exc:
        print(f"{prog + ': ' if prog else ''}error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog + ': ' if prog else ''}interrupted", file=sys.stderr)
        return 130

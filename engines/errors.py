"""The command-line error convention: a problem is one clear line on stderr and a non-zero exit.

Exit codes of every CLI: 0 done, 1 the run failed while writing (`WriteError`, e.g. a full disk),
2 bad input or usage (`UserError`, argparse errors included; nothing was started), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Callable, Iterator, Sequence

__all__ = ["UserError", "WriteError", "run_cli"]


class UserError(Exception):
    """A problem the user can fix (bad path, bad value, missing file). Printed as one line."""

    exit_code = 2


class WriteError(UserError):
    """An output could not be written during a run (disk full, device gone). Printed as one line.
    `broken_pipe`: the output was a pipe whose reader went away (`... | head`), a normal end."""

    exit_code = 1

    def __init__(self, message: str, broken_pipe: bool = False):
        super().__init__(message)
        self.broken_pipe = broken_pipe


def _one_line_error(parser: argparse.ArgumentParser, message: str):
    raise UserError(f"{message} (see {parser.prog} --help)")


@contextlib.contextmanager
def _argparse_errors_as_user_errors() -> Iterator[None]:
    """Every ArgumentParser (and subparser) reports a bad option as a UserError instead of
    printing its usage block and exiting, so all CLIs share the one-line form."""
    original = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = _one_line_error
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None,
            prog: str = "") -> int:
    """Run `main(argv)`; turn UserError and Ctrl+C into one line on stderr and a non-zero exit."""
    prefix = f"{prog}: " if prog else ""
    try:
        with _argparse_errors_as_user_errors():
            return int(main(argv) or 0)
    except UserError as exc:
        print(f"{prefix}error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prefix}interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`... | head`): stop quietly, and keep Python from complaining
        # about the unflushable stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

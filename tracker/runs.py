"""Run folders: runs/track/exp1, exp2, ... (the first free number, created atomically), checks
that an output place is writable before any work, and the finishing of killed runs.

A run holds an exclusive lock on `.running` in its folder while it works and removes the file
when every output was finished. A `.running` that nobody holds belongs to a run that was killed
(or stopped by a write error): the next run into the same root finishes what it left, turning
its PoseTrack journals into the JSON files and removing its unplayable partial video.
"""

from __future__ import annotations

import fcntl
import os
import re
import sys
import tempfile
from pathlib import Path

from engines.errors import UserError, WriteError
from tracker.export.journal import JOURNAL_PATTERN, finish_journal
from tracker.export.video import PARTIAL_VIDEO_PATTERN

__all__ = ["next_run_dir", "check_output_folder", "check_output_file", "RunFolder", "finish_killed_runs"]

MARKER = ".running"


def next_run_dir(root: str | os.PathLike, prefix: str = "exp") -> Path:
    """Create and return root/<prefix>N with N one more than the highest existing number."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)$")
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := pattern.match(p.name))]
    number = max(numbers, default=0) + 1
    while True:
        path = root / f"{prefix}{number}"
        try:
            path.mkdir()        # fails if a parallel run took this number first
            return path
        except FileExistsError:
            number += 1


def check_output_folder(folder: str | os.PathLike, option: str) -> None:
    """UserError unless `folder` is, or can be made, a folder we can write in; creates nothing."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{option} {folder}: is a file, not a folder")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{option} {folder}: {existing} is a file, not a folder")
    try:
        # a nameless file where the filesystem allows it: the probe leaves nothing behind
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UserError(f"{option} {folder}: cannot write in {existing} ({exc.strerror or exc})") from None


def check_output_file(path: str | os.PathLike, option: str) -> None:
    """UserError unless a file can be written at `path`; creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder, not a file")
    check_output_folder(path.parent, option)
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{option} {path}: the file is read-only")


class RunFolder:
    """`with RunFolder(root) as run:` finishes killed runs under root, creates the next numbered
    folder and locks it; a clean exit (no exception) marks it finished."""

    def __init__(self, root: str | os.PathLike, prefix: str = "exp"):
        self.root = Path(root)
        self.prefix = prefix
        self.path: Path | None = None
        self._lock = None

    def __enter__(self) -> Path:
        finish_killed_runs(self.root, self.prefix)
        self.path = next_run_dir(self.root, self.prefix)
        # locked before it takes its name, so no other run ever sees it unlocked while we live
        self._lock = open(self.path / f"{MARKER}.new", "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        os.replace(self.path / f"{MARKER}.new", self.path / MARKER)
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            (self.path / MARKER).unlink()
        self._lock.close()  # releases the lock; a marker left means "finish me"


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def finish_killed_runs(root: str | os.PathLike, prefix: str = "exp") -> None:
    """Finish every run folder under `root` whose run ended without finishing its outputs."""
    root = Path(root)
    if not root.is_dir():
        return
    for marker in sorted(root.glob(f"{prefix}*/{MARKER}")):
        try:
            lock = open(marker)
        except FileNotFoundError:
            continue  # finished by another run meanwhile
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live run
            if marker.exists() and _finish(marker.parent):
                marker.unlink()


def _finish(folder: Path) -> bool:
    """Finish a folder's journals and remove its partial files; False if a journal stays."""
    finished = True
    for journal in sorted(folder.glob(JOURNAL_PATTERN)):
        try:
            target, frames = finish_journal(journal)
        except (OSError, WriteError, ValueError, KeyError) as exc:
            _say(f"note: could not finish {journal}, left by an unfinished run: {exc}")
            finished = False
            continue
        if target is not None:
            _say(f"note: wrote {target} ({frames} frames) from the journal of an unfinished run")
    for video in sorted(folder.glob(PARTIAL_VIDEO_PATTERN)):
        video.unlink()
        _say(f"note: removed {video}, the unplayable video of an unfinished run")
    for leftover in sorted(folder.glob(".*.tmp")):  # temporary files of atomic writes
        leftover.unlink()
    return finished

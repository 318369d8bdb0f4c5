"""A batch's record of its videos: `manifest.jsonl` in the output folder, one JSON line per video
processed, appended when the video's last output was finalised ("done") or when it could not be
processed ("failed", with the one-line reason). A video's last line says where it stands, so the
file is the truth a rerun resumes from, never the presence of an output file.

Appends are whole: each line is one write() to the file opened O_APPEND, under an exclusive
lock (the processes of a torchrun batch and the workers of a Ray cluster share one manifest),
and is fsynced before it counts. A line torn by a crash (no newline at its end) is ignored when
read, and the next append starts on a fresh line.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from engines.errors import UserError, WriteError

__all__ = ["Manifest", "MANIFEST_NAME"]

MANIFEST_NAME = "manifest.jsonl"


class Manifest:
    """The manifest in folder `out`; records are dicts with at least "video" (the key) and "status"."""

    def __init__(self, out: str | os.PathLike):
        self.path = Path(out) / MANIFEST_NAME

    def append(self, record: dict) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":   # a line torn by a crash: start afresh
                    line = b"\n" + line
                if os.write(fd, line) != len(line):
                    os.ftruncate(fd, size)   # a short write (disk full): leave no torn line
                    raise OSError(28, os.strerror(28))
                os.fsync(fd)
            finally:
                os.close(fd)   # releases the lock
        except OSError as exc:
            raise WriteError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def latest(self) -> dict[str, dict]:
        """Each video's last record, by its "video" key ({} when there is no manifest yet)."""
        try:
            text = self.path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise UserError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        records = {}
        for line in text.split("\n")[:-1]:   # the part after the last newline is torn or empty
            try:
                record = json.loads(line)
            except ValueError:
                continue   # torn by a crash, then continued on a fresh line
            if isinstance(record, dict) and isinstance(record.get("video"), str):
                records[record["video"]] = record
        return records

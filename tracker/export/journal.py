"""Append-only journals that become PoseTrack JSON files: constant cost per frame, crash-safe.

A PoseTrack file is one JSON object holding every frame, so it cannot grow by appending. While a
run goes on, each frame is appended as one line to a hidden journal beside the target
(`demo.json` -> `.demo.partial.jsonl`) and flushed; `finish_journal` turns it into the target
atomically at the end, streaming (memory does not grow with the run) and without re-encoding
frames. After a crash or SIGKILL the journal holds every frame written in whole lines (a torn
last line is ignored), so `finish_journal` recovers the file later.

Layout: a header line (JSON object: format, target file name), then one line per frame:
- posetrack18: the image object without "nframes", then each of the frame's annotation objects
  without its "id", after a tab (JSON text never holds a raw tab, so the tab separates them
  safely). The count of frames and the ids' digits (`row_digits`: the most people in a frame)
  are known at the end only;
- posetrack17: the frame's `annolist` entry.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from engines.errors import WriteError
from engines.formats.posetrack import (
    PoseTrackFrame, PoseTrackSequence, annotation_id, row_digits, to_posetrack17_dict, to_posetrack18_dict,
)
from engines.common.files import atomic_path

__all__ = ["Journal", "WholeWrites", "journal_path", "finish_journal", "JOURNAL_PATTERN"]

JOURNAL_PATTERN = ".*.partial.jsonl"
FORMATS = ("posetrack18", "posetrack17")


def journal_path(target: str | os.PathLike) -> Path:
    target = Path(target)
    return target.with_name(f".{target.stem}.partial.jsonl")


def write_failed(path: Path, exc: OSError) -> WriteError:
    return WriteError(f"cannot write {path}: {exc.strerror or exc}", broken_pipe=isinstance(exc, BrokenPipeError))


class WholeWrites:
    """A text file opened for writing whose writes land whole or not at all: a write that fails
    (disk full) is cut back to the end of the last whole one and raises WriteError naming
    `shown_as`. Files under /dev (stdout and the like) cannot be cut back and are left as they are."""

    def __init__(self, path: Path, shown_as: Path):
        self.path, self.shown_as = path, shown_as
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "w", encoding="utf-8", newline="")
        except OSError as exc:
            raise write_failed(shown_as, exc) from None
        self._good = 0 if path.parts[:2] != ("/", "dev") else None   # bytes of whole writes

    def write(self, text: str) -> None:
        try:
            self._file.write(text)
            self._file.flush()
        except OSError as exc:
            self.close()
            if self._good is not None:
                os.truncate(self.path, self._good)  # drop the part that got written
            raise write_failed(self.shown_as, exc) from None
        if self._good is not None:
            self._good += len(text.encode("utf-8"))

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass  # only the unwritten rest of a failed write, already reported


class Journal:
    """Appends frames of one sequence; `finish()` writes the target and removes the journal."""

    def __init__(self, target: str | os.PathLike, fmt: str, sequence: str, vid_id: str):
        if fmt not in FORMATS:
            raise ValueError(f"unknown journal format {fmt!r}")
        self.target = Path(target)
        self.path = journal_path(self.target)
        self.fmt, self.sequence, self.vid_id = fmt, sequence, vid_id
        self._file = WholeWrites(self.path, self.target)
        self._file.write(json.dumps({"format": fmt, "target": self.target.name}) + "\n")

    def append(self, frame: PoseTrackFrame) -> None:
        seq = PoseTrackSequence(self.sequence, self.vid_id, 0, [frame])
        if self.fmt == "posetrack18":
            data = to_posetrack18_dict(seq)
            image = data["images"][0]
            del image["nframes"]  # only known at the end
            for annotation in data["annotations"]:
                del annotation["id"]  # its digits follow the most crowded frame: known at the end too
            line = "\t".join([json.dumps(image)] + [json.dumps(a) for a in data["annotations"]])
        else:
            line = json.dumps(to_posetrack17_dict(seq)["annolist"][0])
        self._file.write(line + "\n")

    def finish(self) -> None:
        """Write the target and remove the journal; a WriteError says where the frames stay when
        the target cannot be written."""
        self._file.close()
        try:
            finish_journal(self.path)
        except WriteError as exc:
            raise WriteError(f"{exc} (its frames stay in {self.path.name})") from None

    def abandon(self) -> None:
        """Close without finishing (the journal stays for a later `finish_journal`)."""
        self._file.close()


def _whole_lines(path: Path) -> Iterator[str]:
    """The journal's complete lines, header included, without their newline."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                return  # torn by a crash in the middle of an append
            yield line[:-1]


def finish_journal(path: str | os.PathLike) -> tuple[Path | None, int]:
    """Turn a journal into its PoseTrack file (atomically) and remove it: (file, frames).
    WriteError when the file cannot be written (the journal is then kept)."""
    path = Path(path)
    lines = _whole_lines(path)
    header = next(lines, None)
    if header is None:  # killed before the header was written: nothing to recover
        path.unlink()
        return None, 0
    header = json.loads(header)
    if header.get("format") not in FORMATS:
        raise ValueError(f"{path}: not a PoseTrack journal")
    target = path.with_name(header["target"])
    frames = most_people = 0
    for line in lines:
        frames += 1
        most_people = max(most_people, line.count("\t"))   # a posetrack18 line: one tab per person
    try:
        with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as out:
            if header["format"] == "posetrack18":
                _write_posetrack18(path, frames, row_digits(most_people), out)
            else:
                _write_posetrack17(path, out)
    except OSError as exc:
        raise write_failed(target, exc) from None
    path.unlink()
    return target, frames


def _frame_lines(path: Path) -> Iterator[str]:
    lines = _whole_lines(path)
    next(lines)
    return lines


def _write_posetrack18(path: Path, frames: int, digits: int, out) -> None:
    # the object to_posetrack18_dict gives, streamed: images, then annotations, then the category
    out.write('{"images": [')
    nframes = f', "nframes": {frames}}}'
    for k, line in enumerate(_frame_lines(path)):
        image = line.split("\t", 1)[0]
        out.write((", " if k else "") + image[:-1] + nframes)
    out.write('], "annotations": [')
    first = True
    for line in _frame_lines(path):
        image, *annotations = line.split("\t")
        if annotations:
            image_id = json.loads(image)["id"]
        for row, annotation in enumerate(annotations):
            image_key, rest = annotation.split(", ", 1)   # '{"image_id": N', then the other keys
            out.write(("" if first else ", ") + f'{image_key}, "id": {annotation_id(image_id, row, digits)}, {rest}')
            first = False
    categories = to_posetrack18_dict(PoseTrackSequence("", "", 0, []))["categories"]
    out.write('], "categories": ' + json.dumps(categories) + "}")


def _write_posetrack17(path: Path, out) -> None:
    out.write('{"annolist": [')
    for k, line in enumerate(_frame_lines(path)):
        out.write((", " if k else "") + line)
    out.write("]}")

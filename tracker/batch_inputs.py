"""The videos of a batch and the names their outputs take.

An input is a folder (searched recursively; hidden files and folders, and the batch's own output
folder, are left out), a glob (quoted, so that the shell leaves it; `**` crosses folders), a video
file, or a text file listing videos (one path a line, relative to the list's folder; blank lines
and lines starting with # are skipped). A video's name is its path relative to the input (a
folder, a glob's fixed leading folder, else the deepest folder holding the videos named; for
several inputs, the deepest folder holding all of those). Its outputs mirror that name in --out,
so `a/x.mp4` and `b/x.mp4` do not collide; two videos whose outputs would (`x.mp4` and `x.avi`)
are refused before any work.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engines.errors import UserError

__all__ = ["Video", "find_videos"]


@dataclass(frozen=True)
class Video:
    path: Path          # where it is read
    name: str           # relative, with / separators: its key in the manifest

    @property
    def stem(self) -> str:
        """Where its outputs go, relative to --out, without their suffix: `a/x` for `a/x.mp4`."""
        return str(PurePosixPath(self.name).with_suffix(""))


def find_videos(inputs: list[str], exclude: Path | None = None) -> list[Video]:
    """The videos of `inputs` (folders, globs, video files, lists), sorted by name; videos under
    `exclude` (the output folder) are left out. UserError when there is nothing to do or two
    videos would write the same outputs."""
    found: dict[str, None] = {}   # absolute paths, in order, without repeats
    bases = []
    for spec in inputs:
        paths, base = _expand(spec)
        found.update(dict.fromkeys(os.path.abspath(p) for p in paths))
        bases.append(os.path.abspath(base))
    if exclude is not None:
        skip = os.path.abspath(exclude)
        found = {p: None for p in found if os.path.commonpath([p, skip]) != skip}
    if not found:
        raise UserError(f"no videos ({', '.join(_extensions())}) in {' '.join(inputs)}")
    root = os.path.commonpath(bases)
    videos = sorted((Video(Path(p), Path(os.path.relpath(p, root)).as_posix()) for p in found),
                    key=lambda video: video.name)
    _refuse_collisions(videos)
    return videos


def _extensions() -> tuple[str, ...]:
    from tracker.sources import VIDEO_EXTENSIONS

    return VIDEO_EXTENSIONS


def _is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in _extensions()


def _expand(spec: str) -> tuple[list[str], str]:
    """(the videos of one input, the folder their names are relative to)."""
    path = Path(spec)
    if path.is_dir():
        return _in_folder(path), spec
    if glob.has_magic(spec):
        matches = [p for p in glob.glob(spec, recursive=True) if _is_video(p) and not os.path.isdir(p)]
        if not matches:
            raise UserError(f"no videos ({', '.join(_extensions())}) match {spec}")
        return matches, _fixed_folder(spec)
    if not path.exists():
        raise UserError(f"no such file or folder: {spec}")
    if _is_video(path):
        return [spec], str(path.parent)
    listed = _listed(path)
    return listed, os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in listed])


def _in_folder(folder: Path) -> list[str]:
    videos = []
    for parent, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        videos += [os.path.join(parent, name) for name in files if not name.startswith(".") and _is_video(name)]
    return videos


def _fixed_folder(pattern: str) -> str:
    """The leading folders of a glob before its first wildcard: `videos/**/*.mp4` -> videos."""
    parts = Path(pattern).parts
    fixed = next(k for k, part in enumerate(parts) if glob.has_magic(part))
    return str(Path(*parts[:fixed])) if fixed else "."


def _listed(path: Path) -> list[str]:
    """The videos a text file lists; UserError naming the line of one that does not exist."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path}: neither a video ({', '.join(_extensions())}) nor a text file listing "
                        f"videos") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    videos = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        video = path.parent / line
        if not video.exists() or video.is_dir():
            raise UserError(f"{path} line {number}: no such video file: {line}")
        videos.append(str(video))
    if not videos:
        raise UserError(f"{path} lists no videos")
    return videos


def _refuse_collisions(videos: list[Video]) -> None:
    by_stem: dict[str, Video] = {}
    for video in videos:
        other = by_stem.setdefault(video.stem, video)
        if other is not video:
            raise UserError(f"{other.name} and {video.name} would write the same outputs ({video.stem}.*): "
                            f"rename one, or track them in separate batches")

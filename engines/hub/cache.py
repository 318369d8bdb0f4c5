"""The model cache: catalogue models fetched on first use, verified, in one folder.

The folder is $HRNET_TRACKER_CACHE, else $XDG_CACHE_HOME/hrnet-tracker, else
~/.cache/hrnet-tracker; the ONNX exports of the pose runtimes live in its `onnx/` sub-folder.
$HRNET_TRACKER_MIRROR replaces every catalogue URL's folder (`MIRROR/<file name>`), for sites
that keep their own copy of the files.

A cached file is trusted only after its SHA-256 matched: the size, modification time and hash of
that check are remembered beside it (`<file>.verified`), so later runs skip the hashing until the
file changes. A cached file that fails the check is never used: it is moved aside to
`<file>.rejected` (it may be the user's own copy), said on stderr, and fetched again. A download
that fails the check is deleted.

`python -m engines fetch NAME` fetches one model; `--list` prints the catalogue and what is cached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engines.errors import UserError
from engines.hub.download import DownloadError, download, sha256_of
from engines.models.catalogue import CATALOGUE, DetectorModel, PoseModel, get_model
from engines.models.weights import ASSETS_DIR

__all__ = ["CACHE_ENV", "MIRROR_ENV", "cache_dir", "model_url", "cached_path", "is_cached", "fetch",
           "model_file", "main"]

CACHE_ENV = "HRNET_TRACKER_CACHE"
MIRROR_ENV = "HRNET_TRACKER_MIRROR"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "hrnet-tracker"


def model_url(model: PoseModel | DetectorModel) -> str:
    mirror = os.environ.get(MIRROR_ENV)
    return f"{mirror.rstrip('/')}/{model.weights.filename}" if mirror else model.weights.url


def cached_path(model: PoseModel | DetectorModel, cache: str | os.PathLike | None = None) -> Path:
    """Where a fetched model's file lives in the cache (whether or not it is there yet)."""
    return cache_dir(cache) / model.weights.filename


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _remembered_digest(path: Path) -> str | None:
    """The SHA-256 remembered beside `path`, while its size and modification time are unchanged."""
    try:
        remembered = json.loads(_marker(path).read_text())
        stamp = _stamp(path)
    except (OSError, ValueError):
        return None
    if not isinstance(remembered, dict) or {k: remembered.get(k) for k in stamp} != stamp:
        return None
    return str(remembered.get("sha256", ""))


def _expected(model: PoseModel | DetectorModel) -> str:
    return (model.weights.sha256 or model.weights.sha256_prefix or "").lower()


def _digest(path: Path) -> str | None:
    """SHA-256 of `path` (None if absent): remembered from an earlier check while its size and
    modification time are unchanged, else hashed now and remembered."""
    if not path.is_file():
        return None
    remembered = _remembered_digest(path)
    if remembered:
        return remembered
    digest = sha256_of(path)
    try:
        _marker(path).write_text(json.dumps(dict(_stamp(path), sha256=digest)))
    except OSError:
        pass   # a read-only cache still works; the file is hashed again next time
    return digest


def _forget(path: Path) -> None:
    path.unlink(missing_ok=True)
    _marker(path).unlink(missing_ok=True)


def _reject(path: Path) -> Path:
    """Move a cached file that failed its check out of the way (not deleted: it may be the only
    copy of someone's file); returns where it went."""
    rejected = path.with_name(path.name + ".rejected")
    os.replace(path, rejected)
    _marker(path).unlink(missing_ok=True)
    return rejected


def is_cached(model: PoseModel | DetectorModel, cache: str | os.PathLike | None = None) -> bool:
    """True when the model's file is present (bundled, or in the cache with a remembered check;
    this does not hash: `fetch` does)."""
    if not model.weights.fetched:
        return True
    remembered = _remembered_digest(cached_path(model, cache))
    return bool(remembered) and remembered.startswith(_expected(model))


def fetch(name: str, cache: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Path of the fetched catalogue model `name`, downloading it on first use and re-fetching a
    cached file that fails its hash."""
    model = get_model(name)
    if not model.weights.fetched:
        raise UserError(f"{name} is bundled with the package, nothing to fetch")
    path = cached_path(model, cache)
    expected = _expected(model)
    digest = _digest(path)
    if digest is not None and digest.startswith(expected):
        return path
    if digest is not None:
        rejected = _reject(path)
        print(f"{path} does not match the published hash of {name}: moved to {rejected}; fetching it again",
              file=sys.stderr)
    url = model_url(model)
    try:
        download(url, path, progress=progress)  # hashed once, below, and remembered
    except DownloadError as exc:
        raise DownloadError(f"model {name}: {exc}") from None
    digest = _digest(path)
    if not digest.startswith(expected):
        _forget(path)
        raise DownloadError(f"model {name}: {url} sent a file whose sha256 is {digest}, not the published "
                            f"{expected}; it was deleted, try again")
    return path


def model_file(model: PoseModel | DetectorModel, cache: str | os.PathLike | None = None) -> Path | None:
    """The weights file of a catalogue model: bundled, or fetched on first use; None for HOG."""
    if model.weights.bundled:
        return ASSETS_DIR / model.weights.bundled
    if model.weights.fetched:
        return fetch(model.name, cache)
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines fetch",
                                     description="Download catalogue models into the cache and verify them.")
    parser.add_argument("name", nargs="*", help="model names (omit with --list)")
    parser.add_argument("--cache", help=f"cache folder (default ${CACHE_ENV}, else ~/.cache/hrnet-tracker)")
    parser.add_argument("--list", action="store_true", help="list the catalogue and what is cached")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        print(f"{'name':26s} {'task':8s} {'h x w':8s} {'weights':22s} {'licence':20s} accuracy")
        for model in CATALOGUE.values():
            size = "x".join(map(str, model.input_size[::-1])) if model.input_size else "any"
            where = ("bundled" if model.weights.bundled else "none needed" if not model.weights.fetched
                     else "cached" if is_cached(model, args.cache) else "fetched on first use")
            print(f"{model.name:26s} {model.task:8s} {size:8s} {where:22s} {model.licence:20s} {model.accuracy}")
        print(f"cache: {cache_dir(args.cache)}")
        return 0
    for name in args.name:
        print(fetch(name, args.cache))
    return 0

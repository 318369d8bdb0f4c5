"""Verified, resumable, atomic downloads into the model cache.

A download goes to `<file>.part` beside the target and resumes from there (HTTP Range) after an
interruption; only a complete file whose SHA-256 matches is renamed to its final name, so the
cache never holds a half-written or wrong model. A wrong hash deletes the partial file. A server
that stalls for `timeout` seconds, or a download still running after `deadline` seconds (a server
dripping bytes never stalls), ends with a message; what arrived is kept for the next try.
Kept over torch.hub.download_url_to_file, which neither resumes (HTTP Range) nor times out a stall.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from engines.errors import UserError

__all__ = ["sha256_of", "download", "DownloadError", "DEADLINE_S"]

CHUNK = 1 << 16
DEADLINE_S = 30 * 60   # the largest catalogue model (~250 MB) at a slow 150 kB/s


class DownloadError(UserError):
    """The file could not be fetched (offline, HTTP error, interrupted, wrong hash)."""


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_hash(path: Path, sha256: str | None, sha256_prefix: str | None) -> None:
    if not sha256 and not sha256_prefix:
        return
    actual = sha256_of(path)
    expected = (sha256 or sha256_prefix).lower()
    if not actual.startswith(expected):
        path.unlink(missing_ok=True)
        raise DownloadError(f"checksum mismatch for {path.name.removesuffix('.part')}: expected sha256 "
                        f"{expected}, got {actual}; the download was deleted, try again")


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, sha256_prefix: str | None = None,
             progress: bool = True, timeout: float = 30.0, deadline: float = DEADLINE_S,
             clock: Callable[[], float] = time.monotonic) -> Path:
    """Fetch `url` to `dest` (resuming a previous partial download), check its SHA-256 (full
    hash, or the leading hex digits some model zoos put in file names), and return `dest`.
    `clock` (seconds) measures the deadline."""
    dest = Path(dest)
    started = clock()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "hrnet-tracker"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:        # nothing left to send: the partial file is complete
            return _finish(part, dest, sha256, sha256_prefix)
        raise DownloadError(f"download of {url} failed: HTTP {exc.code}; or put the file by hand at {dest}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot reach {url} ({reason}); offline? download it elsewhere and put it "
                        f"at {dest}") from None
    with response:
        resumed = response.status == 206
        mode = "ab" if resumed else "wb"      # a 200 answer to a Range request sends it all again
        done = have if resumed else 0
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None else None
        bar = _progress_bar(total, done, dest.name) if progress else None
        try:
            with open(part, mode) as out:
                # read1: whatever has arrived, so that the deadline is checked while bytes trickle
                for block in iter(lambda: response.read1(CHUNK), b""):
                    out.write(block)
                    if clock() - started > deadline:
                        raise DownloadError(f"download of {dest.name} took longer than {deadline:.0f} s; "
                                            "run the same command again to resume")
                    if bar is not None:
                        bar.update(len(block))
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(f"download of {dest.name} interrupted ({exc}); run the same command again "
                            "to resume") from None
        finally:
            if bar is not None:
                bar.close()
    if total is not None and part.stat().st_size < total:
        raise DownloadError(f"download of {dest.name} ended early ({part.stat().st_size} of {total} bytes); "
                        "run the same command again to resume")
    return _finish(part, dest, sha256, sha256_prefix)


def _finish(part: Path, dest: Path, sha256, sha256_prefix) -> Path:
    _check_hash(part, sha256, sha256_prefix)
    os.replace(part, dest)
    return dest


def _progress_bar(total, initial, name):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=name, file=sys.stderr, leave=False)

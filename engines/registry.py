"""Named models that can be fetched on first use: URL, expected hash, kind and converter.

`python -m engines fetch NAME [--cache DIR]`; `resolve(name_or_path, kind)` backs the `--pose`
and `--det` options. The cache is $HRNET_TRACKER_CACHE, else ~/.cache/hrnet-tracker.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from engines.download import download
from engines.errors import UserError

__all__ = ["ModelEntry", "REGISTRY", "cache_dir", "fetch", "resolve", "main"]

CACHE_ENV = "HRNET_TRACKER_CACHE"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str                         # "pose" or "detector"
    url: str
    filename: str                     # name of the downloaded file in the cache
    sha256: str | None = None         # full SHA-256 when published
    sha256_prefix: str | None = None  # leading hex digits (mmpose puts 8 in its file names)
    converter: str | None = None      # "mmpose": rename keys to the official HRNet ones
    preset: str | None = None         # pose: engines.presets name; detector: ONNX layout
    note: str = ""

    @property
    def final_name(self) -> str:
        """The file `fetch` returns: the converted checkpoint where there is a converter."""
        return f"{self.name}.pth" if self.converter else self.filename


_MMPOSE = "https://download.openmmlab.com/mmpose/top_down/hrnet/"
_YOLOX = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/"

REGISTRY: dict[str, ModelEntry] = {e.name: e for e in [
    ModelEntry("hrnet-w32-coco", "pose", _MMPOSE + "hrnet_w32_coco_256x192-c78dce93_20200708.pth",
               "hrnet_w32_coco_256x192-c78dce93_20200708.pth", sha256_prefix="c78dce93",
               converter="mmpose", preset="w32_256x192", note="mmpose top-down HRNet-W32, COCO AP 0.746"),
    ModelEntry("hrnet-w48-coco", "pose", _MMPOSE + "hrnet_w48_coco_384x288-314c8528_20200708.pth",
               "hrnet_w48_coco_384x288-314c8528_20200708.pth", sha256_prefix="314c8528",
               converter="mmpose", preset="w48_384x288", note="mmpose top-down HRNet-W48 384x288"),
    # The YOLOX release publishes no checksums: these are the SHA-256 of the 0.1.1rc0 files as
    # pinned by downstream projects (nano's seen in two independent ones).
    ModelEntry("yolox-nano", "detector", _YOLOX + "yolox_nano.onnx", "yolox_nano.onnx",
               sha256="c789161ed43c8269fcd4e67c67eeeb4e80c622da2eb296a20bc6007bd18a0b7d", preset="yolox",
               note="official YOLOX-Nano ONNX, 416x416 input, raw (grid not decoded)"),
    ModelEntry("yolox-tiny", "detector", _YOLOX + "yolox_tiny.onnx", "yolox_tiny.onnx",
               sha256="427cc366d34e27ff7a03e2899b5e3671425c262ea2291f88bb942bc1cc70b0f7", preset="yolox",
               note="official YOLOX-Tiny ONNX, 416x416 input, raw"),
    ModelEntry("yolox-s", "detector", _YOLOX + "yolox_s.onnx", "yolox_s.onnx",
               sha256="c5c2d13e59ae883e6af3b45daea64af4833a4951c92d116ec270d9ddbe998063", preset="yolox",
               note="official YOLOX-S ONNX, 640x640 input, raw"),
]}


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    if override:
        return Path(override).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hrnet-tracker"


def _entry(name: str) -> ModelEntry:
    if name not in REGISTRY:
        raise UserError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def fetch(name: str, cache: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Path of model `name` in the cache, downloading (and converting) it on first use."""
    entry = _entry(name)
    folder = cache_dir(cache)
    final = folder / entry.final_name
    if final.is_file():
        return final
    raw = download(entry.url, folder / entry.filename, entry.sha256, entry.sha256_prefix, progress=progress)
    if entry.converter == "mmpose":
        from engines.atomic import save_torch_atomic
        from engines.weights import load_state_dict_file

        save_torch_atomic(load_state_dict_file(raw), final)   # official key names
    elif entry.converter is not None:
        raise UserError(f"{name}: unknown converter {entry.converter!r}")
    return final


def resolve(name_or_path: str | os.PathLike, kind: str, cache: str | os.PathLike | None = None) -> Path:
    """An existing file as given, or a registry name of this `kind` fetched on first use."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    name = str(name_or_path)
    if name in REGISTRY:
        if REGISTRY[name].kind != kind:
            raise UserError(f"{name} is a {REGISTRY[name].kind} model, not a {kind} model")
        return fetch(name, cache)
    known = ", ".join(n for n, e in REGISTRY.items() if e.kind == kind)
    raise UserError(f"{name_or_path}: no such file and not a known {kind} model ({known})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines fetch",
                                     description="Download a named model into the cache and verify it.")
    parser.add_argument("name", nargs="?", help="model name (omit with --list)")
    parser.add_argument("--cache", help=f"cache folder (default ${CACHE_ENV} or ~/.cache/hrnet-tracker)")
    parser.add_argument("--list", action="store_true", help="list the known models")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for e in REGISTRY.values():
            print(f"{e.name:16s} {e.kind:9s} {e.note}")
        return 0
    print(fetch(args.name, args.cache))
    return 0

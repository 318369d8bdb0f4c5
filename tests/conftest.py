"""Shared fixtures: every cache in a temporary folder, an untrained lite checkpoint, a six-frame
cut of the demo clip, and a maker of synthetic-people image sets."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch

from engines.models.presets import build_network
from tracker.sources import DEMO_CLIP


@pytest.fixture(scope="session", autouse=True)
def temporary_caches(tmp_path_factory):
    """Model cache, ONNX exports and anything under XDG_CACHE_HOME go to a temporary folder,
    for this process and the subprocesses tests start: tests never write into the home folder."""
    folder = tmp_path_factory.mktemp("cache")
    saved = {name: os.environ.get(name) for name in ("HRNET_TRACKER_CACHE", "XDG_CACHE_HOME")}
    os.environ["HRNET_TRACKER_CACHE"] = str(folder / "hrnet-tracker")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def lite_weights(tmp_path_factory):
    """An untrained lite HRNet checkpoint: the trained bundled weights may not exist yet."""
    path = tmp_path_factory.mktemp("weights") / "lite.pth"
    torch.save(build_network("lite_w16_160x128").state_dict(), path)
    return path


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory):
    if not DEMO_CLIP.is_file():
        pytest.skip("bundled demo clip missing")
    path = tmp_path_factory.mktemp("clip") / "short.mp4"
    reader, writer = cv2.VideoCapture(str(DEMO_CLIP)), None
    for _ in range(6):
        ok, image = reader.read()
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, image.shape[1::-1])
        writer.write(image)
    writer.release()
    return path


@pytest.fixture(scope="session")
def make_synth_images(tmp_path_factory):
    """make(name, "WxH", (split, count, seed), ...) -> a folder with one
    `python -m trainer synth images` set per split."""
    def make(name: str, size: str, *splits) -> Path:
        root = tmp_path_factory.mktemp(name)
        for split, count, seed in splits:
            subprocess.run([sys.executable, "-m", "trainer", "synth", "images", "--count", str(count),
                            "--out", str(root / split), "--seed", str(seed), "--size", size],
                           check=True, cwd=Path(__file__).parents[1], capture_output=True)
        return root
    return make

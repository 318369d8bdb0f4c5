"""Shared fixtures: an untrained lite checkpoint, a six-frame cut of the demo clip, and a maker of
synthetic-people image sets."""

import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch

from engines.hrnet import build_model
from tracker.sources import DEMO_CLIP


@pytest.fixture(scope="session")
def lite_weights(tmp_path_factory):
    """An untrained lite HRNet checkpoint: the trained bundled weights may not exist yet."""
    path = tmp_path_factory.mktemp("weights") / "lite.pth"
    torch.save(build_model("lite_w16_160x128").state_dict(), path)
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

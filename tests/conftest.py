"""Shared set-up: every cache and home-folder write goes to a temporary folder. Fixtures: an
untrained lite checkpoint, a six-frame cut of the demo clip, a maker of synthetic-people sets."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from engines.models.presets import build_network
from fed_videos import cut_video
from tracker.sources import DEMO_CLIP
from trainer.synth import cli as synth_cli


# Set before any test module is imported: onnxruntime fixes the folder of its device-id file
# ($HOME/.cache) when it loads, before any fixture could run.
HOME_VARIABLES = ("HRNET_TRACKER_CACHE", "XDG_CACHE_HOME", "HOME", "MPLCONFIGDIR")
SAVED_HOME = pytest.StashKey[tuple]()   # (their values before the run, the temporary folder)


def pytest_configure(config):
    """Model cache, ONNX exports and whatever libraries write under the home folder (onnxruntime's
    ~/.cache, matplotlib's ~/.config) go to one temporary folder, for this process and the
    subprocesses tests start: tests never write into the user's home."""
    folder = Path(tempfile.mkdtemp(prefix="hrnet-tests-"))
    config.stash[SAVED_HOME] = ({name: os.environ.get(name) for name in HOME_VARIABLES}, folder)
    os.environ.update(HRNET_TRACKER_CACHE=str(folder / "hrnet-tracker"), XDG_CACHE_HOME=str(folder),
                      HOME=str(folder / "home"), MPLCONFIGDIR=str(folder / "matplotlib"))


def pytest_unconfigure(config):
    saved, folder = config.stash[SAVED_HOME]
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(folder, ignore_errors=True)


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
    return cut_video(DEMO_CLIP, tmp_path_factory.mktemp("clip") / "short.mp4", 6)


@pytest.fixture(scope="session")
def make_synth_images(tmp_path_factory):
    """make(name, "WxH", (split, count, seed), ...) -> a folder with one
    `python -m trainer synth images` set per split."""
    def make(name: str, size: str, *splits) -> Path:
        root = tmp_path_factory.mktemp(name)
        for split, count, seed in splits:   # in this process: no interpreter start per set
            assert synth_cli.main(["images", "--count", str(count), "--out", str(root / split), "--seed", str(seed),
                                   "--size", size]) == 0
        return root
    return make

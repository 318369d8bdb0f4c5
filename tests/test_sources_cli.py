"""The tracker command on damaged inputs, as issue 15 reproduced them: a real process, the real
bundled models, the user's stdout and stderr."""

import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tracker.sources import DEMO_CLIP

pytestmark = pytest.mark.slow


def track(tmp_path, source):
    """`python -m tracker --source SOURCE --export jsonl --no-save --bundled`: (result, JSONL records)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_FFMPEG")}  # as a user runs it
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run([sys.executable, "-m", "tracker", "--source", str(source), "--export", "jsonl",
                             "--no-save", "--bundled", "--out", str(tmp_path / "runs")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for path in (tmp_path / "runs").rglob("*.jsonl") for line in path.open()]
    return result, records


def test_damaged_middle_of_the_demo_clip(tmp_path):
    """200 KB of random bytes at half of demo.mp4: before, 121 frames, '25 unreadable frames
    skipped' and ~180 FFmpeg lines; plain OpenCV decodes frames 0-120 and 161-249."""
    if not DEMO_CLIP.is_file():
        pytest.skip("bundled demo clip missing")
    path = tmp_path / "mid.mp4"
    shutil.copy(DEMO_CLIP, path)
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(np.random.default_rng(0).integers(0, 256, 200 * 1024, dtype=np.uint8).tobytes())
    capture, expected, failures = cv2.VideoCapture(str(path)), [], 0
    fps, count = capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    while failures < 500:
        ok, _ = capture.read()
        failures = 0 if ok else failures + 1
        if ok:
            expected.append(round(capture.get(cv2.CAP_PROP_POS_MSEC) * fps / 1000))
    assert max(expected) == count - 1 and len(expected) < count

    result, records = track(tmp_path, path)
    assert [r["frame"] for r in records if not r.get("lost")] == expected
    assert [r["frame"] for r in records] == list(range(count))      # the lost ones keep their places
    lost = count - len(expected)
    assert f"{len(expected)} frames" in result.stdout and f"{lost} frames lost" in result.stdout
    assert "[mpeg4" not in result.stderr and "[mov" not in result.stderr
    assert f"mid: {lost} frames could not be decoded" in result.stderr


def test_image_folder_with_an_unreadable_file_keeps_every_frame_number(tmp_path):
    """Before: 0006.jpg was exported as frame 5 once 0003.jpg could not be read."""
    if not DEMO_CLIP.is_file():
        pytest.skip("bundled demo clip missing")
    folder = tmp_path / "seq"
    folder.mkdir()
    capture = cv2.VideoCapture(str(DEMO_CLIP))
    for k in range(8):
        cv2.imwrite(str(folder / f"{k:04d}.jpg"), capture.read()[1])
    (folder / "0003.jpg").write_bytes(b"\xff\xd8 cut short")
    result, records = track(tmp_path, folder)
    assert [(r["frame"], r["file"]) for r in records if not r.get("lost")] == [
        (k, f"{k:04d}.jpg") for k in (0, 1, 2, 4, 5, 6, 7)]
    assert [(r["frame"], r["file"]) for r in records if r.get("lost")] == [(3, "0003.jpg")]
    assert "1 frames lost" in result.stdout
    assert "unreadable image" in result.stderr and "0003.jpg" in result.stderr

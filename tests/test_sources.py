"""Frame sources on real files, real decoding, a looping file as a camera, real sockets."""

import socket
import time

import cv2
import numpy as np
import pytest

from engines.errors import UserError
from tracker.sources import CaptureThread, LiveSource, VideoSource, open_source


def write_video(path, frames=12, fps=50.0, size=(64, 48)):
    """A small MP4 whose frame k is filled with grey level 10 * k (decodable back to its index)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for k in range(frames):
        writer.write(np.full((size[1], size[0], 3), 10 * k, np.uint8))
    writer.release()
    return path


def level(image):
    return int(round(float(image.mean()) / 10))


def test_video_file_gives_every_frame_in_order(tmp_path):
    source = open_source(write_video(tmp_path / "clip.mp4"))
    frames = list(source)
    assert source.num_frames == 12 and source.fps == pytest.approx(50.0)
    assert [f.index for f in frames] == list(range(12))
    assert [level(f.image) for f in frames] == list(range(12))
    assert frames[3].timestamp == pytest.approx(3 / 50)
    assert all(f.image.dtype == np.uint8 and f.image.shape == (48, 64, 3) for f in frames)
    assert source.skipped == 0


def test_image_folder_and_glob_skip_and_count_corrupt_files(tmp_path):
    for k in range(4):
        cv2.imwrite(str(tmp_path / f"{k:03d}.png"), np.full((20, 30, 3), 10 * k, np.uint8))
    (tmp_path / "002b.png").write_bytes(b"not an image at all")
    source = open_source(tmp_path)
    frames = list(source)
    assert [level(f.image) for f in frames] == [0, 1, 2, 3]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert source.skipped == 1
    globbed = list(open_source(str(tmp_path / "00[13].png")))
    assert [level(f.image) for f in globbed] == [1, 3]


@pytest.mark.parametrize("spec, message", [
    ("missing.mp4", "not found"),
    ("notes.txt", "unsupported"),
    ("webcam:x", "webcam:N"),
    ("webcam:7", "no camera"),
    ("empty_dir", "no images"),
])
def test_bad_sources_are_one_line_user_errors(tmp_path, monkeypatch, spec, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(UserError, match=message) as info:
        open_source(spec)
    assert "\n" not in str(info.value)


def test_unreachable_stream_fails_fast():
    with socket.socket() as s:          # a port that was free a moment ago: nobody listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for url in (f"http://127.0.0.1:{port}/video.mjpg", f"rtsp://127.0.0.1:{port}/live"):
        start = time.monotonic()
        with pytest.raises(UserError, match="cannot reach"):
            open_source(url)
        assert time.monotonic() - start < 3.0


def test_file_capture_thread_keeps_every_frame_for_a_slow_consumer(tmp_path):
    capture = CaptureThread(open_source(write_video(tmp_path / "clip.mp4", frames=8)), buffer=2)
    indices = []
    while (item := capture.get(timeout=5)) is not None:
        indices.append(item[0].index)
        time.sleep(0.01)
    capture.stop()
    assert indices == list(range(8)) and capture.dropped == 0


def test_looping_file_as_camera_newest_frame_wins(tmp_path):
    """A consumer three times slower than the camera sees fresh frames, never a growing backlog."""
    path = write_video(tmp_path / "cam.mp4", frames=10, fps=50.0)
    capture = CaptureThread(open_source(path, loop=True, live=True))
    ages, indices = [], []
    for _ in range(15):
        frame, captured = capture.get(timeout=5)
        ages.append(time.monotonic() - captured)
        indices.append(frame.index)
        time.sleep(0.06)                 # 3 camera periods of work per frame
    capture.stop()
    assert capture.dropped > 10
    assert max(ages[3:]) < 0.05          # waiting at most about one camera period, not a queue
    assert all(b - a >= 2 for a, b in zip(indices[3:], indices[4:]))  # stale frames skipped


def flaky_opener(path, good_opens):
    """Opens `path` the first `good_opens` times, then the stream is gone; counts its calls."""
    calls = []

    def opener():
        calls.append(1)
        if len(calls) > good_opens:
            raise UserError("stream gone")
        return cv2.VideoCapture(str(path))
    return opener, calls


def test_dropped_stream_reconnects_with_bounded_tries(tmp_path):
    path = write_video(tmp_path / "short.mp4", frames=5)
    opener, calls = flaky_opener(path, good_opens=3)
    source = LiveSource(str(path), "flaky", max_reconnects=3, backoff_s=0.01, opener=opener)
    start = time.monotonic()
    frames = list(source)                # the stream "drops" at each end of the file
    assert len(frames) == 15 and source.reconnects == 2
    assert [f.index for f in frames] == list(range(15))
    assert len(calls) == 3 + 3           # three good opens, then three failed tries, then it gives up
    assert time.monotonic() - start < 5  # backoff 0.01 + 0.02 + 0.04 s at most per drop


def test_video_source_loop_restarts(tmp_path):
    source = VideoSource(write_video(tmp_path / "clip.mp4", frames=4), loop=True)
    frames = [f for _, f in zip(range(10), source)]
    assert [level(f.image) for f in frames] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert [f.index for f in frames] == list(range(10))

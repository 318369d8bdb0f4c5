"""Frame sources on real files, real decoding, a looping file as a camera, real sockets."""

import http.server
import os
import socket
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from engines.errors import UserError
from tracker.sources import (READ_TIMEOUT_S, CaptureThread, Frame, LiveSource, Source, SteadyClock, VideoSource,
                             open_source)
from tracker.tracking import PoseTracker


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
    assert source.lost == 0


def test_image_folder_and_glob_skip_and_count_corrupt_files(tmp_path, capsys):
    """002b.png is not named like the others (a number alone), so files go in name order,
    numbered by position; the unreadable file keeps its position."""
    for k in range(4):
        cv2.imwrite(str(tmp_path / f"{k:03d}.png"), np.full((20, 30, 3), 10 * k, np.uint8))
    (tmp_path / "002b.png").write_bytes(b"not an image at all")
    source = open_source(tmp_path)
    frames = list(source)
    assert [level(f.image) for f in frames] == [0, 1, 2, 3]
    assert [f.index for f in frames] == [0, 1, 2, 4]
    assert source.lost == 1
    assert "002b.png" in capsys.readouterr().err
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


def test_live_capture_hands_on_the_newest_frame_numbered_in_order():
    """Five frames arrive before the consumer asks: it gets the fifth, numbered 0 (the four stale
    ones are dropped and take no number), then the next one, numbered 1."""
    sent, resume = threading.Event(), threading.Event()

    class Camera(Source):
        live = True

        def __iter__(self):
            for k in range(6):
                if k == 5:
                    sent.set()
                    resume.wait(10)
                yield Frame(k, float(k), np.full((8, 8, 3), 10 * k, np.uint8))

    capture = CaptureThread(Camera("cam", 25.0, None))
    assert sent.wait(10)
    first, _ = capture.get(timeout=5)
    resume.set()
    second, _ = capture.get(timeout=5)
    assert capture.get(timeout=5) is None
    capture.stop()
    assert (first.index, first.timestamp, first.image[0, 0, 0]) == (0, 4.0, 40)
    assert (second.index, second.timestamp, second.image[0, 0, 0]) == (1, 5.0, 50)
    assert capture.dropped == 4


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


# --- damaged videos (issue 15, cases 1 and 13) ---------------------------------------------------

def write_numbered_video(path, frames=60, fps=25.0):
    """An MP4 with a fixed noise texture on top (big key frames) and frame k's bottom half at grey 4 * k."""
    texture = np.random.default_rng(0).integers(0, 256, (60, 160, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (160, 120))
    for k in range(frames):
        writer.write(np.concatenate([texture, np.full((60, 160, 3), 4 * k, np.uint8)]))
    writer.release()
    return path


def damage(path, at=0.5, fraction=0.1, seed=1):
    """Overwrite `fraction` of the file's bytes from `at` of its length with random bytes."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(int(size * at))
        f.write(np.random.default_rng(seed).integers(0, 256, int(size * fraction), dtype=np.uint8).tobytes())
    return path


def plain_opencv_frame_numbers(path, fps):
    """What plain OpenCV decodes, numbered by the container's timestamps (reads past failures)."""
    capture, numbers, failures = cv2.VideoCapture(str(path)), [], 0
    while failures < 500:
        ok, _ = capture.read()
        failures = 0 if ok else failures + 1
        if ok:
            numbers.append(round(capture.get(cv2.CAP_PROP_POS_MSEC) * fps / 1000))
    capture.release()
    return numbers


def test_damaged_middle_of_video_gives_every_decodable_frame_and_counts_the_lost(tmp_path, capsys):
    path = damage(write_numbered_video(tmp_path / "mid.mp4"))
    expected = plain_opencv_frame_numbers(path, 25.0)
    gap = next(b for a, b in zip(expected, expected[1:]) if b > a + 1)
    assert 0 < expected.index(gap) < len(expected) - 5      # the damage really is in the middle

    source = open_source(path)
    frames = list(source)
    assert [f.index for f in frames] == expected
    assert source.lost == 60 - len(expected) > 5
    assert frames[expected.index(gap)].timestamp == pytest.approx(gap / 25.0)
    # each frame carries its own picture: grey 4 * number (within the codec's error), not a renumbered one
    assert all(abs(f.image[60:].mean() / 4 - f.index) < 3 for f in frames)
    assert f"{source.lost} frames could not be decoded" in capsys.readouterr().err


def test_damaged_avi_counts_the_frames_its_index_announced(tmp_path):
    """AVI's demuxer renumbers the frames after damage: the count comes from the header."""
    path = tmp_path / "mid.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (160, 120))
    texture = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for _ in range(60):
        writer.write(texture)
    writer.release()
    damage(path)
    decoded = len(plain_opencv_frame_numbers(path, 25.0))
    source = open_source(path)
    assert len(list(source)) == decoded < 60
    assert source.lost == 60 - decoded


def run_python(code, *args, timeout=120):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_FFMPEG")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_decoder_noise_stays_off_stderr(tmp_path):
    """FFmpeg writes from C to fd 2: only a real process shows what the user's terminal gets.
    Plain OpenCV prints FFmpeg lines for this file; the source prints only its own report."""
    path = damage(write_numbered_video(tmp_path / "mid.mp4"))
    plain = run_python("import cv2, sys\nc = cv2.VideoCapture(sys.argv[1])\n"
                       "for _ in range(200): c.read()", path)
    assert "[mpeg4 @" in plain.stderr                      # the noise exists without the fix
    ours = run_python("import sys\nfrom tracker.sources import open_source\n"
                      "print(sum(1 for _ in open_source(sys.argv[1])))", path)
    assert ours.returncode == 0, ours.stderr
    assert int(ours.stdout) == len(plain_opencv_frame_numbers(path, 25.0))
    lines = ours.stderr.splitlines()
    assert len(lines) == 1 and "could not be decoded" in lines[0], ours.stderr


def test_undecodable_video_is_one_line_error(tmp_path):
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    result = subprocess.run([sys.executable, "-m", "tracker", "--source", str(bad), "--out", str(tmp_path / "runs")],
                            capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if not k.startswith("OPENCV_FFMPEG")})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"tracker: error: cannot decode video {bad}"]


# --- image folders (issue 15, case 4) ------------------------------------------------------------

def test_image_folder_frames_follow_the_numbers_in_the_names(tmp_path, capsys):
    """0003 unreadable, 0007 missing: every other file keeps its number (0006.jpg is frame 6)."""
    for k in range(10):
        if k != 7:
            cv2.imwrite(str(tmp_path / f"{k:04d}.jpg"), np.full((20, 30, 3), 10 * k, np.uint8))
    (tmp_path / "0003.jpg").write_bytes(b"truncated")
    source = open_source(tmp_path)
    frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2, 4, 5, 6, 8, 9]
    assert [level(f.image) for f in frames] == [0, 1, 2, 4, 5, 6, 8, 9]
    assert frames[5].timestamp == pytest.approx(6 / 30)
    assert source.lost == 1
    assert "0003.jpg" in capsys.readouterr().err


def test_image_numbers_count_from_the_first_file_in_numeric_order(tmp_path):
    """A MOTChallenge folder starts at 000001.jpg: that is frame 0 (the MOT export writes 1);
    names without zero padding go in numeric order, not name order."""
    for k in (1, 2, 10, 11):
        cv2.imwrite(str(tmp_path / f"frame_{k}.png"), np.full((20, 30, 3), 10 * k, np.uint8))
    frames = list(open_source(tmp_path))
    assert [f.index for f in frames] == [0, 1, 9, 10]
    assert [level(f.image) for f in frames] == [1, 2, 10, 11]


def test_names_that_are_not_a_number_each_keep_name_order(tmp_path):
    """Times in names (cam_12-00-05) are not frame numbers: name order, numbered by position."""
    for k, name in enumerate(["cam_12-00-05.png", "cam_12-01-03.png", "cam_12-02-01.png"]):
        cv2.imwrite(str(tmp_path / name), np.full((20, 30, 3), 10 * k, np.uint8))
    frames = list(open_source(tmp_path))
    assert [f.index for f in frames] == [0, 1, 2] and [level(f.image) for f in frames] == [0, 1, 2]


# --- streams over HTTP (issue 15, case 2) ---------------------------------------------------------

def serve(folder, with_length=True, good_answers=None):
    """A real HTTP server on 127.0.0.1 for `folder`; without a length it answers like a live
    stream (no Content-Length, body until the connection closes); after `good_answers` GETs it
    answers 503. Returns (server, list of GET paths)."""
    gets = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self):
            gets.append(self.path)
            if good_answers is not None and len(gets) > good_answers:
                self.send_error(503)
            elif with_length:
                super().do_GET()
            else:
                data = (folder / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "video/x-msvideo")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

        def log_message(self, *args):
            pass

    Handler.protocol_version = "HTTP/1.0"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, gets


def write_avi(path, frames=20):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    for k in range(frames):
        writer.write(np.full((48, 64, 3), 10 * k % 256, np.uint8))
    writer.release()
    return path


def test_http_video_with_a_length_is_finite(tmp_path):
    write_avi(tmp_path / "clip.avi")
    server, gets = serve(tmp_path)
    try:
        start = time.monotonic()
        source = open_source(f"http://127.0.0.1:{server.server_port}/clip.avi")
        frames = list(source)
        source.close()
    finally:
        server.shutdown()
    assert not source.live and source.num_frames == 20
    assert [f.index for f in frames] == list(range(20))
    assert [level(f.image) for f in frames] == list(range(20))
    assert len(gets) == 2                       # the length question and the one read: never re-fetched
    assert time.monotonic() - start < 5


def test_http_stream_without_length_is_live_and_reconnects_boundedly(tmp_path, capsys):
    write_avi(tmp_path / "clip.avi")
    server, _ = serve(tmp_path, with_length=False)
    url = f"http://127.0.0.1:{server.server_port}/clip.avi"
    try:
        probe = open_source(url)
        assert probe.live and isinstance(probe, LiveSource)
        probe.close()
        server_once, gets_once = serve(tmp_path, with_length=False, good_answers=1)
        source = LiveSource(f"http://127.0.0.1:{server_once.server_port}/clip.avi", "clip",
                            max_reconnects=2, backoff_s=0.05)
        frames = list(source)
        server_once.shutdown()
    finally:
        server.shutdown()
    assert len(frames) == 20 and source.reconnects == 0
    assert len(gets_once) == 1 + 2              # one good answer, then two refused tries
    err = capsys.readouterr().err
    assert "reconnecting in 0.05 s (try 1 of 2)" in err and "(try 2 of 2)" in err
    assert "stream lost, 2 reconnection tries failed" in err


@pytest.mark.slow
def test_stalled_http_download_ends_after_the_read_timeout(tmp_path, capsys):
    """The server sends 60% of a finite video, then holds the connection without a byte more."""
    data = write_avi(tmp_path / "clip.avi", frames=100).read_bytes()

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "video/x-msvideo")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) * 6 // 10])
            self.wfile.flush()
            time.sleep(30)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    start = time.monotonic()
    source = open_source(f"http://127.0.0.1:{server.server_port}/clip.avi")
    frames = list(source)
    source.close()
    assert time.monotonic() - start < 3 * READ_TIMEOUT_S
    assert 0 < len(frames) < 100 and source.lost == 100 - len(frames)
    assert f"{source.lost} of the 100 frames the file announces could not be decoded" in capsys.readouterr().err
    server.server_close()


# --- live timestamps (issue 16, item 4) -----------------------------------------------------------

def test_live_timestamps_do_not_follow_a_wall_clock_step_back(tmp_path, monkeypatch):
    """The wall clock jumps back an hour after two frames; live timestamps keep going forward
    and the tracker (which refuses time going back) takes every frame."""
    path = write_video(tmp_path / "cam.mp4", frames=8)
    wall, frames = time.time, []

    def stepping_clock():
        return wall() - (3600.0 if len(frames) >= 2 else 0.0)

    monkeypatch.setattr(time, "time", stepping_clock)
    source = LiveSource(str(path), "cam", max_reconnects=0,
                        opener=lambda: cv2.VideoCapture(str(path)))
    tracker = PoseTracker()
    for frame in source:
        frames.append(frame)
        tracker.update(np.zeros((0, 5), np.float32), np.zeros((0, 17, 3), np.float32), frame.timestamp)
    assert len(frames) == 8
    stamps = [f.timestamp for f in frames]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert abs(stamps[0] - wall()) < 60          # still epoch seconds, read once from the wall clock


def test_steady_clock_is_epoch_seconds_advanced_monotonically():
    clock = SteadyClock()
    first, second = clock(), clock()
    assert abs(first - time.time()) < 1 and second >= first

"""Frame sources on real files, real decoding, a looping file as a camera, real sockets."""

import http.server
import os
import re
import socket
import struct
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


def test_unreachable_stream_fails_before_the_decoder_is_asked(monkeypatch):
    """FFmpeg may wait a long time on a host that does not answer: the source tries the socket
    itself first and never hands such a URL to the decoder."""
    with socket.socket() as s:          # a port that was free a moment ago: nobody listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    decoders = []
    monkeypatch.setattr(cv2, "VideoCapture", lambda *args: decoders.append(args))
    for url in (f"http://127.0.0.1:{port}/video.mjpg", f"rtsp://127.0.0.1:{port}/live"):
        with pytest.raises(UserError, match=f"cannot reach stream {re.escape(url)}: Connection refused"):
            open_source(url)
    assert decoders == []


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


def test_dropped_stream_reconnects_with_bounded_tries(tmp_path, capsys):
    path = write_video(tmp_path / "short.mp4", frames=5)
    opener, calls = flaky_opener(path, good_opens=3)
    source = LiveSource(str(path), "flaky", max_reconnects=3, backoff_s=0.01, opener=opener)
    frames = list(source)                # the stream "drops" at each end of the file
    assert len(frames) == 15 and source.reconnects == 2
    assert [f.index for f in frames] == list(range(15))
    assert len(calls) == 3 + 3           # three good opens, then three failed tries, then it gives up
    # a frame resets the backoff; without one it doubles, and the third failed try is the last
    tries = [line.split(": ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert tries == ["stream dropped, reconnecting in 0.01 s (try 1 of 3)"] * 3 + [
        "stream dropped, reconnecting in 0.02 s (try 2 of 3)", "stream dropped, reconnecting in 0.04 s (try 3 of 3)",
        "stream lost, 3 reconnection tries failed"]


def test_video_source_loop_restarts(tmp_path):
    source = VideoSource(write_video(tmp_path / "clip.mp4", frames=4), loop=True)
    frames = [f for _, f in zip(range(10), source)]
    assert [level(f.image) for f in frames] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert [f.index for f in frames] == list(range(10))


# --- damaged videos (issue 15, cases 1 and 13) ---------------------------------------------------

def write_numbered_video(path, frames=60, fps=25.0, size=(160, 120)):
    """An MP4 with a fixed noise texture on top (big key frames) and frame k's bottom half at grey 4 * k."""
    w, h = size
    texture = np.random.default_rng(0).integers(0, 256, (h // 2, w, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for k in range(frames):
        writer.write(np.concatenate([texture, np.full((h - h // 2, w, 3), 4 * k, np.uint8)]))
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


def test_a_video_whose_pictures_are_all_damaged_is_one_error_at_open(tmp_path, capsys):
    """It opens (its index is whole) but no frame decodes: an error, not an empty run, and not
    first a line counting the frames that could not be decoded."""
    path = write_numbered_video(tmp_path / "blank.mp4")
    data = bytearray(path.read_bytes())
    _, at, size = next(box for box in mp4_boxes(data) if box[0] == "mdat")
    data[at + 8:at + size] = bytes(size - 8)
    path.write_bytes(bytes(data))
    with pytest.raises(UserError) as info:
        open_source(path)
    assert str(info.value) == f"no frame of video {path} could be decoded"
    assert capsys.readouterr().err == ""


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


def test_image_files_are_named_relative_to_their_folder(tmp_path):
    """A glob over two folders names its files from the folder that holds them all; a number
    that no file has is named ""; a video has no file names."""
    for folder, k in (("a", 1), ("b", 2), ("b", 4)):
        (tmp_path / folder).mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / folder / f"cam_{k}.png"), np.full((20, 30, 3), 10 * k, np.uint8))
    source = open_source(str(tmp_path / "*" / "cam_*.png"))
    assert [(f.index, source.file_name(f.index)) for f in source] == [(0, "a/cam_1.png"), (1, "b/cam_2.png"),
                                                                       (3, "b/cam_4.png")]
    assert source.file_name(2) == ""
    assert open_source(tmp_path / "b").file_name(2) == "cam_4.png"
    assert open_source(write_video(tmp_path / "clip.mp4")).file_name(0) is None


# --- streams over HTTP (issue 15, case 2) ---------------------------------------------------------

def serve(folder, with_length=True, good_answers=None, ranges=False):
    """A real HTTP server on 127.0.0.1 for `folder`; without a length it answers like a live
    stream (no Content-Length, body until the connection closes); after `good_answers` GETs it
    answers 503. It ignores Range requests, as Python's own server does, unless `ranges`.
    Returns (server, list of (GET path, Range header))."""
    gets = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self):
            gets.append((self.path, self.headers.get("Range")))
            wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
            if good_answers is not None and len(gets) > good_answers:
                self.send_error(503)
            elif ranges and wanted:
                data = (folder / self.path.lstrip("/")).read_bytes()
                first, last = int(wanted[1]), int(wanted[2] or len(data) - 1)
                self.send_response(206)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
                self.send_header("Content-Length", str(last + 1 - first))
                self.end_headers()
                self.wfile.write(data[first:last + 1])
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
    server.handle_error = lambda *args: None     # a reader that stops early is no error here
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
        source = open_source(f"http://127.0.0.1:{server.server_port}/clip.avi")
        frames = list(source)           # ends: a live source would reconnect at the end and go on
        source.close()
    finally:
        server.shutdown()
    assert not source.live and source.num_frames == 20
    assert [f.index for f in frames] == list(range(20))
    assert [level(f.image) for f in frames] == list(range(20))
    assert len(gets) == 2                       # the length question and the one read: never re-fetched


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


def mp4_boxes(data, start=0, end=None):
    """(type, offset, size) of the MP4 boxes (atoms) in data[start:end]."""
    end = len(data) if end is None else end
    while start < end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        yield kind.decode(), start, size
        start += size


def fast_start(data):
    """The MP4 with its index (moov) moved before the pictures (mdat), as `qt-faststart` or
    `ffmpeg -movflags faststart` make it: every chunk offset in the index grows by its size."""
    top = {kind: (at, size) for kind, at, size in mp4_boxes(data)}
    at, size = top["moov"]
    moov = bytearray(data[at:at + size])

    def shift(start, end):
        for kind, box, length in mp4_boxes(moov, start, end):
            if kind in ("trak", "mdia", "minf", "stbl"):   # boxes of boxes on the way to the chunk offsets
                shift(box + 8, box + length)
            elif kind == "stco":                           # version and flags, count, then 32-bit offsets
                count = struct.unpack(">I", moov[box + 12:box + 16])[0]
                table = slice(box + 16, box + 16 + 4 * count)
                moov[table] = struct.pack(f">{count}I", *(o + size for o in struct.unpack(f">{count}I", moov[table])))
            assert kind != "co64"

    shift(8, size)
    after_ftyp = sum(top["ftyp"])
    return data[:after_ftyp] + bytes(moov) + data[after_ftyp:at] + data[at + size:]


def test_an_mp4_with_its_index_at_the_end_needs_a_server_with_range_requests(tmp_path):
    """FFmpeg finds the index at the end, then must go back to the pictures: a server that
    ignores Range cannot send them again. That is an error saying so at open, not an empty run;
    the same file from a server with Range, and a fast-start copy from either, give every frame."""
    path = write_numbered_video(tmp_path / "clip.mp4", size=(320, 240))   # ~230 KB, more than FFmpeg buffers
    assert [kind for kind, _, _ in mp4_boxes(path.read_bytes())] == ["ftyp", "free", "mdat", "moov"]
    (tmp_path / "fast.mp4").write_bytes(fast_start(path.read_bytes()))
    assert [kind for kind, _, _ in mp4_boxes((tmp_path / "fast.mp4").read_bytes())] == ["ftyp", "moov", "free", "mdat"]
    plain, _ = serve(tmp_path)
    ranged, asked = serve(tmp_path, ranges=True)
    try:
        url = f"http://127.0.0.1:{plain.server_port}/clip.mp4"
        with pytest.raises(UserError) as info:
            open_source(url)
        assert str(info.value) == (f"no frame of video {url} could be decoded (the server must support Range "
                                   "requests, or the MP4 be fast-start: its moov atom first)")
        for url in (f"http://127.0.0.1:{ranged.server_port}/clip.mp4", f"http://127.0.0.1:{plain.server_port}/fast.mp4"):
            source = open_source(url)
            frames = list(source)
            source.close()
            assert [f.index for f in frames] == list(range(60)) and source.lost == 0, url
            assert all(abs(f.image[120:].mean() / 4 - f.index) < 3 for f in frames)
    finally:
        plain.shutdown()
        ranged.shutdown()
    assert any(rng not in (None, "bytes=0-") for _, rng in asked)   # the decoder did go back


def test_a_video_nobody_can_decode_from_the_command_line_is_exit_2_and_creates_nothing(tmp_path):
    write_numbered_video(tmp_path / "clip.mp4", size=(320, 240))
    server, _ = serve(tmp_path)
    url = f"http://127.0.0.1:{server.server_port}/clip.mp4"
    try:
        result = subprocess.run([sys.executable, "-m", "tracker", "--source", url, "--out", str(tmp_path / "runs")],
                                capture_output=True, text=True, timeout=120,
                                env={k: v for k, v in os.environ.items() if not k.startswith("OPENCV_FFMPEG")})
    finally:
        server.shutdown()
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"tracker: error: no frame of video {url} could be decoded (the server "
                                          "must support Range requests, or the MP4 be fast-start: its moov atom first)"]
    assert not (tmp_path / "runs").exists()


def test_a_folder_without_a_readable_image_is_one_error_at_open(tmp_path, capsys):
    for k in range(3):
        (tmp_path / f"{k:04d}.jpg").write_bytes(b"not a picture")
    with pytest.raises(UserError) as info:
        open_source(tmp_path)
    assert str(info.value) == f"none of the 3 images in {tmp_path} can be read: damaged, empty or not images"
    assert capsys.readouterr().err == ""     # not a line per file before it


@pytest.mark.slow
def test_stalled_http_download_ends_after_the_read_timeout(tmp_path, capsys):
    """The server sends 60% of a finite video, then holds the connection without a byte more
    until the test ends: only the read timeout can end the download."""
    data = write_avi(tmp_path / "clip.avi", frames=100).read_bytes()
    release = threading.Event()

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "video/x-msvideo")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) * 6 // 10])
            self.wfile.flush()
            release.wait(300)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = open_source(f"http://127.0.0.1:{server.server_port}/clip.avi")
        frames = []
        reader = threading.Thread(target=lambda: frames.extend(source), daemon=True)
        reader.start()
        reader.join(12 * READ_TIMEOUT_S)      # a hang guard: the stalled read ends after READ_TIMEOUT_S
        assert not reader.is_alive(), "the stalled download was never given up"
        source.close()
    finally:
        release.set()
        server.shutdown()
        server.server_close()
    assert 0 < len(frames) < 100 and source.lost == 100 - len(frames)
    assert f"{source.lost} of the 100 frames the file announces could not be decoded" in capsys.readouterr().err


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


def test_steady_clock_is_the_wall_clock_read_once_advanced_by_the_monotonic_one():
    walls = iter([1_700_000_000.0, 1_600_000_000.0])         # the wall clock is stepped back an hour... and more
    ticks = iter([50.0, 50.0, 50.25, 53.0])
    clock = SteadyClock(wall=lambda: next(walls), monotonic=lambda: next(ticks))
    assert [clock(), clock(), clock()] == [1_700_000_000.0, 1_700_000_000.25, 1_700_000_003.0]
    assert next(walls) == 1_600_000_000.0                    # read once, at the start

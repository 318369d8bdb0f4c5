"""`python -m tracker --serve`: a real tracker process on 127.0.0.1 read with real HTTP clients
(MJPEG parts decoded by OpenCV, /tracks against the JSONL file, SSE order), the token, the
routes that do not exist, a port in use, stalled viewers and the end of a run.

Waits end on events (a line on stderr, a frame number reached, the process' exit); HANG_GUARD_S
only keeps a broken run from hanging the suite.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.client import HTTPConnection
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from engines.errors import run_cli
from tracker.app import main
from tracker.bench import main as bench_main
from tracker.serve import LiveServer
from tracker.serve_views import LiveView
from tracker.tracking import TrackBatch

REPO = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 300.0
TOKEN = "test-token-7f3a"


class TrackerRun:
    """`python -m tracker ARGS --serve 127.0.0.1:0 --out FOLDER/runs` in a subprocess (from
    FOLDER); `url` once it says it serves."""

    def __init__(self, folder: Path, *args: str, env: dict | None = None, token: str | None = None,
                 serve: str = "127.0.0.1:0"):
        self.folder, self.out, self.token = folder, folder / "runs", token
        self._stdout, self._stderr = folder / "stdout.txt", folder / "stderr.txt"
        with open(self._stdout, "wb") as stdout, open(self._stderr, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tracker", *args, "--serve", serve, "--out", str(self.out)],
                cwd=folder, stdout=stdout, stderr=stderr, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
        self.url = self._wait_for_url()

    def stderr(self) -> str:
        return self._stderr.read_text(errors="replace")

    def stdout(self) -> str:
        return self._stdout.read_text(errors="replace")

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + HANG_GUARD_S
        while time.monotonic() < deadline:
            found = re.search(r"serving the live view on (http://\S+/)", self.stderr())
            if found:
                return found.group(1)
            assert self.process.poll() is None, f"the run ended before serving:\n{self.stderr()}"
            time.sleep(0.05)
        raise AssertionError("the run never said its URL")

    def route(self, path: str, token: str | None = "default", **query) -> str:
        """URL of `path` with `query` and (unless None) the run's token in ?token=."""
        token = self.token if token == "default" else token
        query = {**query, **({"token": token} if token is not None else {})}
        return self.url.rstrip("/") + path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")

    def get(self, path: str, method: str = "GET", headers: dict | None = None, **query) -> tuple[int, dict, bytes]:
        """(status, headers, body) of one request."""
        request = urllib.request.Request(self.route(path, **query), method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=HANG_GUARD_S) as answer:
                return answer.status, dict(answer.headers), answer.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def frame(self, after: int = -1, source: int = 0) -> dict:
        """/tracks of `source` once its frame number is past `after`."""
        deadline = time.monotonic() + HANG_GUARD_S
        while time.monotonic() < deadline:
            status, _, body = self.get("/tracks", source=source)
            if status == 200 and json.loads(body)["frame"] > after:
                return json.loads(body)
            assert status in (200, 503), body
            assert self.process.poll() is None, f"the run ended:\n{self.stderr()}"
            time.sleep(0.05)
        raise AssertionError(f"no frame after {after}")

    def open(self, path: str, **query) -> HTTPConnection:
        """A streaming GET of `path` (response in .response)."""
        parts = urlsplit(self.route(path, **query))
        connection = HTTPConnection(parts.hostname, parts.port, timeout=HANG_GUARD_S)
        connection.request("GET", f"{parts.path}?{parts.query}")
        connection.response = connection.getresponse()
        return connection

    def interrupt(self) -> int:
        """Ctrl+C; the exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.wait()

    def wait(self) -> int:
        try:
            return self.process.wait(HANG_GUARD_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()

    def jsonl(self, name: str) -> list[dict]:
        """The whole lines of runs/exp1/NAME.jsonl."""
        lines = (self.out / "exp1" / f"{name}.jsonl").read_text().split("\n")[:-1]
        return [json.loads(line) for line in lines]


def mjpeg_parts(response, count: int) -> list[bytes]:
    """The first `count` parts of a multipart/x-mixed-replace response, read by their lengths."""
    kind = response.headers["Content-Type"]
    assert kind.startswith("multipart/x-mixed-replace")
    boundary = b"--" + kind.split("boundary=")[1].encode()
    assert response.readline().rstrip() == boundary
    parts = []
    while len(parts) < count:
        headers = {}
        while line := response.readline().rstrip():
            name, _, value = line.partition(b":")
            headers[name.lower()] = value.strip()
        assert headers[b"content-type"] == b"image/jpeg"
        parts.append(response.read(int(headers[b"content-length"])))
        assert response.readline() == b"\r\n" and response.readline().rstrip() == boundary
    return parts


def sse_events(response, count: int) -> list[tuple[str, dict]]:
    """The first `count` (event name, data) pairs of a text/event-stream response, comments and
    the retry field left out."""
    assert response.headers["Content-Type"] == "text/event-stream"
    events, name, data = [], "message", None
    while len(events) < count:
        line = response.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            data = line[len("data: "):]
        elif line == "" and data is not None:
            events.append((name, json.loads(data)))
            name, data = "message", None
    return events


def stalled_viewer(url: str, path: str) -> socket.socket:
    """Asks for `path` and never reads; its small receive buffer is full after a frame or two."""
    parts = urlsplit(url)
    viewer = socket.socket()
    viewer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    viewer.connect((parts.hostname, parts.port))
    viewer.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
    return viewer


def mirrored(clip: Path, path: Path) -> Path:
    """The video `clip` mirrored left to right, written to `path`: other tracks than the clip's."""
    reader, writer = cv2.VideoCapture(str(clip)), None
    while (read := reader.read())[0]:
        writer = writer or cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, read[1].shape[1::-1])
        writer.write(cv2.flip(read[1], 1))
    writer.release()
    return path


@pytest.fixture(scope="module")
def two_views(tmp_path_factory, lite_weights, short_clip):
    """One run serving two looping sources (the short clip and its mirror image, so their tracks
    differ) with --det-interval 2, JSONL files and the token from TRACKER_SERVE_TOKEN."""
    folder = tmp_path_factory.mktemp("two_views")
    mirror = mirrored(short_clip, folder / "mirror.mp4")
    run = TrackerRun(folder, "--source", str(short_clip), "--source", str(mirror), "--loop", "--pose",
                     str(lite_weights), "--bundled", "--export", "jsonl", "--det-interval", "2",
                     env={"TRACKER_SERVE_TOKEN": TOKEN}, token=TOKEN)
    try:
        yield run
    finally:
        assert run.interrupt() == 130, run.stderr()


def test_mjpeg_parts_are_the_annotated_frames_and_opencv_reads_them(two_views, short_clip):
    first = cv2.VideoCapture(str(short_clip)).read()[1]
    stream = two_views.open("/stream.mjpg", source=1)
    try:
        parts = mjpeg_parts(stream.response, 3)
    finally:
        stream.close()
    images = [cv2.imdecode(np.frombuffer(part, np.uint8), cv2.IMREAD_COLOR) for part in parts]
    assert all(image is not None and image.shape == first.shape for image in images)
    capture = cv2.VideoCapture(two_views.route("/stream.mjpg"))
    try:
        ok, image = capture.read()
    finally:
        capture.release()
    assert ok and image.shape == first.shape


def test_tracks_is_the_latest_jsonl_line_of_each_source(two_views):
    for source, name in ((0, "short"), (1, "mirror")):
        served = two_views.frame(source=source)
        line = next(r for r in two_views.jsonl(name) if r["frame"] == served["frame"])
        assert served == line
    # the views are the sources' own: the mirrored clip's people stand elsewhere
    boxes = [[t["box"] for t in two_views.frame(source=source)["tracks"]] for source in (0, 1)]
    assert boxes[0] and boxes[1] and boxes[0] != boxes[1]


def test_events_are_the_jsonl_lines_in_frame_order_with_stats(two_views):
    stream = two_views.open("/events", source=0)
    try:
        events = sse_events(stream.response, 40)
    finally:
        stream.close()
    frames = [data for name, data in events if name == "message"]
    stats = [data for name, data in events if name == "stats"]
    assert len(frames) == len(stats) == 20
    numbers = [f["frame"] for f in frames]
    assert numbers == sorted(set(numbers))                          # increasing, no repeats
    assert [s["frame"] for s in stats] == numbers                  # each frame's stats follow it
    assert all(s["latency_ms"] > 0 for s in stats) and stats[-1]["fps"] > 0
    lines = {r["frame"]: r for r in two_views.jsonl("short")}
    assert all(lines[f["frame"]] == f for f in frames)


def test_every_route_wants_the_token(two_views):
    for path in ("/", "/tracks", "/stream.mjpg", "/events"):
        status, headers, _ = two_views.get(path, token=None)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert two_views.get(path, token="wrong")[0] == 403
        assert two_views.get(path, token=None, headers={"Authorization": "Bearer wrong"})[0] == 403
    assert two_views.get("/tracks", token=None, headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    status, headers, page = two_views.get("/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert page.count(b"<section data-source=") == 2


def test_a_loopback_server_answers_only_requests_for_loopback_names(two_views):
    """DNS rebinding: a page of rebound.example, its name pointed at 127.0.0.1, is refused."""
    port = urlsplit(two_views.url).port
    assert two_views.get("/tracks", headers={"Host": f"rebound.example:{port}"})[0] == 403
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        assert two_views.get("/tracks", headers={"Host": host})[0] == 200


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/nothing", 404),
    ("GET", "/../../../etc/passwd", 404),
    ("GET", "/tracker/app.py", 404),
    ("POST", "/tracks", 405),
    ("PUT", "/", 405),
    ("DELETE", "/events", 405),
    ("HEAD", "/stream.mjpg", 405),
    ("POST", "/nothing", 404),
])
def test_only_the_get_routes_exist(two_views, method, path, status):
    answer, headers, _ = two_views.get(path, method=method)
    assert answer == status
    if status == 405:
        assert headers["Allow"] == "GET"


def test_a_source_that_is_not_there(two_views):
    assert two_views.get("/tracks", source=2)[0] == 404
    assert two_views.get("/stream.mjpg", source="x")[0] == 400


def test_a_port_in_use_is_one_line_and_exit_2_before_anything_loads(tmp_path, monkeypatch, capsys):
    def no_models(*args):
        raise AssertionError("models loaded before the port was checked")

    monkeypatch.setattr("tracker.app.load_run_models", no_models)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = run_cli(main, ["--serve", f"127.0.0.1:{port}", "--out", str(tmp_path / "runs")], prog="tracker")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"port {port} on 127.0.0.1 is in use" in err[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, message", [
    (["--serve", "eighty"], "must be [HOST:]PORT"),
    (["--serve", "127.0.0.1:70000"], "must be [HOST:]PORT"),
    (["--serve-token", "abc"], "--serve-token goes with --serve"),
    (["--serve", "0", "--serve-token", " "], "token is empty"),
])
def test_bad_serve_options_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    assert run_cli(main, argv + ["--out", str(tmp_path / "runs")], prog="tracker") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "runs").exists()


def no_tracks() -> TrackBatch:
    return TrackBatch(ids=np.zeros(0, np.int64), boxes=np.zeros((0, 5), np.float32),
                      keypoints=np.zeros((0, 17, 3), np.float32), keypoints_raw=np.zeros((0, 17, 3), np.float32),
                      states=np.zeros(0, np.int8), frames_since_update=np.zeros(0, np.int32),
                      joint_states=np.zeros((0, 17), np.int8))


def test_a_view_hands_on_what_it_keeps_in_order_and_measures_fps():
    """A viewer that comes back late gets the frames the view still keeps, oldest first (the
    ones before are skipped), the newest picture, and the end once it has them all."""
    ticks = iter(np.arange(100) * 0.04)     # a frame every 40 ms: 25 FPS
    view = LiveView("clip", clock=lambda: float(next(ticks)), keep=4)
    for index in range(10):
        view.publish(index, index / 25, None, no_tracks(), np.full((36, 64, 3), index * 20, np.uint8), latency_ms=30.0)
    kept = view.newer(0, timeout=0)
    assert [item.frame_index for item in kept] == [6, 7, 8, 9]
    assert kept[-1].fps == pytest.approx(25.0) and kept[-1].record["frame"] == 9
    picture = view.picture()
    assert picture.seq == kept[-1].seq
    assert abs(int(cv2.imdecode(np.frombuffer(picture.jpeg, np.uint8), cv2.IMREAD_COLOR).mean()) - 180) <= 2
    assert view.newer(kept[-1].seq, timeout=0) == []
    view.publish(10, 0.4, None, no_tracks(), None, latency_ms=30.0)
    view.close()
    assert [item.frame_index for item in view.newer(kept[-1].seq, timeout=0)] == [10]
    assert view.newer(kept[-1].seq + 1, timeout=0) is None


def test_closing_the_server_ends_every_response_even_to_stalled_viewers(monkeypatch):
    """Viewers that never read while big frames come (their sends block): close() ends every
    handler thread, so neither the end of input nor Ctrl+C waits on a viewer. (Without the send
    timeout: only close() can end them.)"""
    monkeypatch.setattr("tracker.serve._Handler.timeout", None)
    stream = SimpleNamespace(name="noise", source=SimpleNamespace(file_name=lambda index: None), latency_ms={})
    server = LiveServer(("127.0.0.1", 0))
    server.start([stream])
    url = f"http://127.0.0.1:{server.port}/"
    viewers = [stalled_viewer(url, path) for path in ("/stream.mjpg", "/events", "/stream.mjpg")]
    try:
        deadline = time.monotonic() + HANG_GUARD_S
        while len(handler_threads()) < len(viewers) and time.monotonic() < deadline:   # accepted
            time.sleep(0.01)
        noise = np.random.default_rng(0)
        for index in range(100):   # noise: ~150 kB of JPEG a frame, far past what the sockets hold
            stream.last_frame = SimpleNamespace(index=index, timestamp=index / 25)
            stream.last_tracks, stream.last_image = no_tracks(), noise.integers(0, 255, (360, 640, 3), np.uint8)
            server.publish(stream)
        server.close()
        for thread in handler_threads():    # while the viewers are still there, not reading
            thread.join(HANG_GUARD_S)
        assert not handler_threads()
    finally:
        server.close()
        for viewer in viewers:
            viewer.close()


def handler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "process_request_thread" in t.name]


def test_bench_live_serves_stalled_viewers_and_closes_them(capsys, lite_weights, short_clip):
    """`bench --stage live --stalled-viewers 3` times the run while it is served to three
    viewers that never read; at the end no handler thread is left."""
    argv = ["--stage", "live", "--source", str(short_clip), "--pose", str(lite_weights), "--det", "hog",
            "--seconds", "600", "--frames", "10", "--warmup", "2", "--json", "--stalled-viewers", "3"]
    assert bench_main(argv) == 0
    out, err = capsys.readouterr()
    [row] = json.loads(out)
    assert row["frames"] >= 10 and 0 < row["median_ms"] <= row["p90_ms"]
    assert "serving the live view on http://127.0.0.1:" in err
    for thread in handler_threads():
        thread.join(HANG_GUARD_S)
    assert not handler_threads()


@pytest.mark.slow
def test_stalled_viewers_hold_nothing_up_and_ctrl_c_finishes_every_output(tmp_path, lite_weights, short_clip):
    """Three viewers that never read (two MJPEG, one SSE) while the run goes on for 300 frames
    (megabytes past what their sockets hold); the pipeline and another viewer go on, and Ctrl+C
    ends the run with every output whole. The token comes from --serve-token here."""
    run = TrackerRun(tmp_path, "--source", str(short_clip), "--loop", "--pose", str(lite_weights), "--bundled",
                     "--export", "jsonl", "--export", "posetrack", "--serve-token", TOKEN, token=TOKEN)
    try:
        start = run.frame()["frame"]
        stalled = [stalled_viewer(run.url, f"{path}?token={TOKEN}")
                   for path in ("/stream.mjpg", "/stream.mjpg", "/events")]
        assert run.frame(after=start + 300)["frame"] > start + 300
        stream = run.open("/stream.mjpg")
        parts = mjpeg_parts(stream.response, 2)
        stream.close()
        assert all(cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR) is not None for p in parts)
    finally:
        code = run.interrupt()
    assert code == 130, run.stderr()
    frames = int(re.search(r"(\d+) frames", run.stdout()).group(1))
    assert frames > start + 300
    assert [r["frame"] for r in run.jsonl("short")] == list(range(frames))
    posetrack = json.loads((run.out / "exp1" / "short.json").read_text())
    assert len(posetrack["images"]) == frames
    assert int(cv2.VideoCapture(str(run.out / "exp1" / "short.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    for viewer in stalled:
        viewer.close()


@pytest.mark.slow
def test_the_end_of_input_closes_the_server_and_the_run_ends(tmp_path, lite_weights, short_clip):
    run = TrackerRun(tmp_path, "--source", str(short_clip), "--pose", str(lite_weights), "--bundled",
                     "--export", "jsonl")
    assert run.wait() == 0, run.stderr()      # the serving thread holds nothing open
    assert [r["frame"] for r in run.jsonl("short")] == list(range(6))
    assert "6 frames" in run.stdout()

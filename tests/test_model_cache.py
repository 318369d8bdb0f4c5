"""The model catalogue and cache against a real HTTP server on 127.0.0.1 serving files made here:
verified download, wrong hash, resume, deadline, unreachable server, cached files checked once
and re-fetched when corrupt, first use through load_pose, the offline message of the tracker CLI,
and the choice of default models per source and device."""

import dataclasses
import hashlib
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.errors import UserError, run_cli
from engines.hub import cache
from engines.hub.download import DownloadError, download
from engines.models.catalogue import CATALOGUE, DetectorModel, PoseModel, Weights

ROOT = Path(__file__).resolve().parents[1]


class FileServer:
    """Serves `files` (url path -> bytes) with HTTP Range support; paths in `cut_once` get only
    their first half on the first request (Content-Length promises all of it); with `drip` (a
    threading.Semaphore) the body goes one byte per release: a server that never stalls."""

    def __init__(self, files, drip: threading.Semaphore | None = None):
        self.files, self.cut_once, self.requests = files, set(), []
        self.drip = drip
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if self.path in server.cut_once:
                    server.cut_once.discard(self.path)
                    self.wfile.write(body[start:len(body) // 2])
                    self.close_connection = True
                    return
                if server.drip is not None:
                    for byte in body[start:]:
                        if not server.drip.acquire(timeout=10):   # the client is gone
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    payload = bytes(range(256)) * 4000           # ~1 MB
    srv = FileServer({"/model.onnx": payload})
    srv.payload, srv.sha = payload, hashlib.sha256(payload).hexdigest()
    yield srv
    srv.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]                         # closed again: nothing listens there


def test_good_download_is_verified(server, tmp_path):
    dest = tmp_path / "cache" / "model.onnx"
    assert download(server.url + "/model.onnx", dest, sha256=server.sha, progress=False) == dest
    assert dest.read_bytes() == server.payload
    assert [p.name for p in dest.parent.iterdir()] == ["model.onnx"]


def test_wrong_hash_leaves_nothing_in_the_cache(server, tmp_path):
    with pytest.raises(UserError, match="checksum mismatch"):
        download(server.url + "/model.onnx", tmp_path / "model.onnx", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []
    # a matching 8-hex-digit prefix (the mmpose file-name convention) is accepted
    dest = download(server.url + "/model.onnx", tmp_path / "model.onnx", sha256_prefix=server.sha[:8], progress=False)
    assert dest == tmp_path / "model.onnx" and dest.read_bytes() == server.payload
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    # and a wrong prefix is refused like a wrong hash
    with pytest.raises(UserError, match="checksum mismatch"):
        download(server.url + "/model.onnx", tmp_path / "other.onnx", sha256_prefix="0" * 8, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_truncated_download_resumes_with_range(server, tmp_path):
    server.cut_once.add("/model.onnx")
    dest = tmp_path / "model.onnx"
    with pytest.raises(UserError, match="again"):
        download(server.url + "/model.onnx", dest, sha256=server.sha, progress=False)
    assert not dest.exists()
    part = tmp_path / "model.onnx.part"
    assert 0 < part.stat().st_size < len(server.payload)
    download(server.url + "/model.onnx", dest, sha256=server.sha, progress=False)
    assert dest.read_bytes() == server.payload and not part.exists()
    assert server.requests[-1] == ("/model.onnx", f"bytes={len(server.payload) // 2}-")


def test_a_dripping_server_meets_the_deadline(tmp_path):
    """The server sends a byte each time the download reads its clock, which says a second went
    by: the download stops at the deadline, having never stalled, and keeps what arrived."""
    drip = threading.Semaphore(0)
    seconds = itertools.count()

    def clock():
        drip.release()
        return float(next(seconds))

    srv = FileServer({"/slow.onnx": b"x" * 1000}, drip=drip)
    try:
        with pytest.raises(DownloadError, match="slow.onnx took longer than 4 s; run the same command again"):
            download(srv.url + "/slow.onnx", tmp_path / "slow.onnx", progress=False, timeout=10, deadline=4.0,
                     clock=clock)
    finally:
        srv.close()
    # started at 0; a byte per read, the clock read after each: the fifth (5 s) is past the deadline
    assert (tmp_path / "slow.onnx.part").read_bytes() == b"x" * 5
    assert not (tmp_path / "slow.onnx").exists()


def test_unreachable_server_says_where_to_put_the_file(tmp_path):
    dest = tmp_path / "yolox_s.onnx"
    with pytest.raises(UserError, match=f"put it at {dest}"):
        download(f"http://127.0.0.1:{closed_port()}/yolox_s.onnx", dest, progress=False, timeout=5)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def served_detector(server, tmp_path, monkeypatch):
    """A catalogue detector whose file the local server holds, the mirror pointing there."""
    monkeypatch.setenv(cache.MIRROR_ENV, server.url)
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    model = DetectorModel("test-det", "yolox", (416, 416),
                          Weights(url="https://example.invalid/models/model.onnx", sha256=server.sha),
                          "test", "none")
    monkeypatch.setitem(CATALOGUE, model.name, model)
    return model


def test_first_use_fetches_with_progress_then_trusts_the_remembered_check(server, served_detector, tmp_path,
                                                                          capsys, monkeypatch):
    hashed = []
    monkeypatch.setattr(cache, "sha256_of", lambda p: hashed.append(p) or hashlib.sha256(Path(p).read_bytes()).hexdigest())
    path = cache.fetch("test-det")
    assert path == tmp_path / "cache" / "model.onnx" and path.read_bytes() == server.payload
    assert "model.onnx" in capsys.readouterr().err                    # the progress bar
    assert hashed == [path]                                           # the fresh download, hashed once
    assert cache.is_cached(served_detector)
    assert cache.fetch("test-det") == path
    assert len(server.requests) == 1 and hashed == [path]             # no download, no hashing


def test_a_wrong_file_from_the_server_is_deleted_with_both_hashes_named(server, served_detector, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setitem(CATALOGUE, "test-det", dataclasses.replace(
        served_detector, weights=Weights(url=served_detector.weights.url, sha256="ab" * 32)))
    with pytest.raises(DownloadError, match=f"test-det: .*sha256 is {server.sha}, not the published {'ab' * 32}"):
        cache.fetch("test-det", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.parametrize("damage", ["garbage", "same-size"])
def test_a_corrupt_cached_file_is_moved_aside_and_fetched_again(server, served_detector, tmp_path, capsys, damage):
    path = tmp_path / "cache" / "model.onnx"
    path.parent.mkdir()
    if damage == "garbage":
        path.write_bytes(b"18 bytes of junk!!")                       # never verified
    else:
        cache.fetch("test-det")                                       # verified, then damaged in place
        data = bytearray(path.read_bytes())
        data[1000] ^= 0xFF
        path.write_bytes(bytes(data))
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    damaged = path.read_bytes()
    assert not cache.is_cached(served_detector)
    assert cache.fetch("test-det", progress=False) == path
    assert path.read_bytes() == server.payload
    rejected = tmp_path / "cache" / "model.onnx.rejected"
    assert rejected.read_bytes() == damaged
    assert f"{path} does not match the published hash of test-det: moved to {rejected}" in capsys.readouterr().err


def test_a_file_put_in_the_cache_by_hand_is_kept_when_it_does_not_match(served_detector, tmp_path, capsys,
                                                                         monkeypatch):
    """Offline, the user puts their own export where the message said: it does not match, so it
    is not used, but it is moved aside, not deleted, and the line says where."""
    monkeypatch.setenv(cache.MIRROR_ENV, f"http://127.0.0.1:{closed_port()}")
    path = tmp_path / "cache" / "model.onnx"
    path.parent.mkdir()
    path.write_bytes(b"my own export of the same weights")
    with pytest.raises(DownloadError, match="cannot reach"):
        cache.fetch("test-det", progress=False)
    rejected = tmp_path / "cache" / "model.onnx.rejected"
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx.rejected"]
    assert rejected.read_bytes() == b"my own export of the same weights"
    assert capsys.readouterr().err.splitlines() == [
        f"{path} does not match the published hash of test-det: moved to {rejected}; fetching it again"]


def test_fetch_cli_lists_the_catalogue_with_what_is_cached(server, served_detector, capsys):
    assert run_cli(cache.main, ["--list"]) == 0
    listing = capsys.readouterr().out
    assert "litehrnet30-coco" in listing and "yolox-tiny" in listing
    assert [line for line in listing.splitlines() if line.startswith("test-det ")][0].count("fetched on first use") == 1
    assert run_cli(cache.main, ["test-det"]) == 0
    assert capsys.readouterr().out.strip().endswith("model.onnx")
    run_cli(cache.main, ["--list"])
    assert " cached " in [line for line in capsys.readouterr().out.splitlines() if line.startswith("test-det ")][0]
    assert run_cli(cache.main, ["no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_a_fetched_mmpose_checkpoint_loads_through_load_pose(server, tmp_path, monkeypatch):
    from engines.models.presets import build_network
    from engines.pose.loading import load_pose

    network = build_network("lite_w16_160x128")
    checkpoint = tmp_path / "mm.pth"   # mmpose 0.x form, as the model zoo publishes it
    torch.save({"meta": {"epoch": 210}, "state_dict": {
        ("keypoint_head." if k.startswith("final_layer.") else "backbone.") + k: v
        for k, v in network.state_dict().items()}}, checkpoint)
    server.files["/mm.pth"] = checkpoint.read_bytes()
    monkeypatch.setenv(cache.MIRROR_ENV, server.url)
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    sha = hashlib.sha256(server.files["/mm.pth"]).hexdigest()
    monkeypatch.setitem(CATALOGUE, "test-pose", PoseModel(
        "test-pose", "lite_w16_160x128", Weights(url="https://example.invalid/mm.pth", sha256_prefix=sha[:8]),
        "test", "none"))
    estimator = load_pose("test-pose", backend="torch")
    assert estimator.preset.name == "lite_w16_160x128"
    with pytest.raises(UserError, match="applies to a checkpoint file"):
        load_pose("test-pose", "w32_256x192")
    with pytest.raises(UserError, match="unknown preset"):
        load_pose("test-pose", "nosuch")
    # the same file given as a path: its preset is found from its keys and shapes
    assert load_pose(tmp_path / "cache" / "mm.pth", backend="torch").preset.name == "lite_w16_160x128"
    torch.save({"conv9.weight": torch.ones(3)}, tmp_path / "odd.pth")
    with pytest.raises(UserError, match="fit none of the presets"):
        load_pose(tmp_path / "odd.pth")


def test_catalogue_entries_are_well_formed():
    for name, model in CATALOGUE.items():
        assert model.name == name and model.task in ("pose", "detector") and model.licence and model.accuracy
        source = model.weights
        if source.bundled:
            assert (cache.ASSETS_DIR / source.bundled).is_file()
        elif source.url:
            assert source.url.startswith("https://") and (source.sha256 or source.sha256_prefix)
            if source.sha256_prefix:                                  # the mmpose file-name convention
                assert f"-{source.sha256_prefix}_" in source.filename
        if model.task == "pose":
            assert model.input_size == model.architecture.image_size and model.schema == "coco17"


def test_default_models_per_source_and_device():
    """The demo clip runs offline on the bundled models; any real source gets real-world models
    (fetched), the same with the demo beside it, and lighter ones on the CPU than on a GPU;
    --bundled, --det and --pose choose."""
    from engines.models.presets import build_network
    from tracker.app import build_parser, default_models

    def models(sources, device, *flags):
        return default_models(build_parser().parse_args(list(flags)), sources, device)

    def parameters(pose):
        return sum(p.numel() for p in build_network(CATALOGUE[pose].architecture).parameters())

    bundled = models(["demo"], "cpu")
    assert [CATALOGUE[m].task for m in bundled] == ["detector", "pose"]
    assert all(CATALOGUE[m].weights.bundled for m in bundled)
    assert models(["demo"], "cuda") == models(["clip.mp4"], "cuda", "--bundled") == bundled
    real = {device: models(["clip.mp4"], device) for device in ("cpu", "cuda")}
    for device, pair in real.items():
        assert [CATALOGUE[m].task for m in pair] == ["detector", "pose"]
        assert all(CATALOGUE[m].weights.fetched for m in pair)
        assert models(["webcam"], device) == models(["demo", "clip.mp4"], device) == pair
    (cpu_det, cpu_pose), (cuda_det, cuda_pose) = real["cpu"], real["cuda"]
    assert np.prod(CATALOGUE[cpu_det].input_size) < np.prod(CATALOGUE[cuda_det].input_size)
    assert parameters(cpu_pose) < parameters(cuda_pose)
    assert models(["clip.mp4"], "cpu", "--det", "hog") == ("hog", cpu_pose)
    assert models(["demo"], "cpu", "--pose", "hrnet-w32-coco") == (bundled[0], "hrnet-w32-coco")


def test_offline_first_use_is_one_line_naming_model_url_path_and_flag(tmp_path):
    env = dict(os.environ, **{cache.CACHE_ENV: str(tmp_path / "cache"),
                              cache.MIRROR_ENV: f"http://127.0.0.1:{closed_port()}"})
    video = ROOT / "tracker" / "assets" / "demo.mp4"
    result = subprocess.run([sys.executable, "-m", "tracker", "--source", str(video), "--out", str(tmp_path / "runs")],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    model = CATALOGUE["litehrnet30-coco"]
    assert "litehrnet30-coco" in lines[0] and model.weights.filename in lines[0]
    assert str(tmp_path / "cache" / model.weights.filename) in lines[0] and "--bundled" in lines[0]
    assert not (tmp_path / "runs").exists()

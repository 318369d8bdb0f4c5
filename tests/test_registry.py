"""Model registry and downloader against a real HTTP server on 127.0.0.1 serving files made here:
good download, wrong hash, truncated-then-resumed download, unreachable server, CLI, resolve."""

import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from engines import registry
from engines.download import download
from engines.errors import UserError, run_cli
from engines.registry import ModelEntry, fetch, resolve


class FileServer:
    """Serves `files` (url path -> bytes) with HTTP Range support; paths in `cut_once` get only
    their first half on the first request (Content-Length promises all of it)."""

    def __init__(self, files):
        self.files, self.cut_once, self.requests = files, set(), []
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


def test_good_download_is_verified_and_cached(server, tmp_path):
    dest = tmp_path / "cache" / "model.onnx"
    assert download(server.url + "/model.onnx", dest, sha256=server.sha, progress=False) == dest
    assert dest.read_bytes() == server.payload
    assert download(server.url + "/model.onnx", dest, sha256=server.sha, progress=False) == dest
    assert len(server.requests) == 1                      # second call is served by the cache
    assert [p.name for p in dest.parent.iterdir()] == ["model.onnx"]


def test_wrong_hash_leaves_nothing_in_the_cache(server, tmp_path):
    with pytest.raises(UserError, match="checksum mismatch"):
        download(server.url + "/model.onnx", tmp_path / "model.onnx", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []
    # a matching 8-hex-digit prefix (the mmpose file-name convention) is accepted
    download(server.url + "/model.onnx", tmp_path / "model.onnx", sha256_prefix=server.sha[:8], progress=False)


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


def test_unreachable_server_says_where_to_put_the_file(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                         # closed again: nothing listens there
    dest = tmp_path / "yolox_s.onnx"
    with pytest.raises(UserError, match=f"put it at {dest}"):
        download(f"http://127.0.0.1:{port}/yolox_s.onnx", dest, progress=False, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_fetch_cli_resolve_and_mmpose_conversion(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "env-cache"))
    monkeypatch.setitem(registry.REGISTRY, "test-det", ModelEntry(
        "test-det", "detector", server.url + "/model.onnx", "model.onnx", sha256=server.sha))
    assert run_cli(registry.main, ["test-det", "--cache", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "model.onnx").read_bytes() == server.payload
    assert capsys.readouterr().out.strip() == str(tmp_path / "c" / "model.onnx")
    assert resolve("test-det", "detector") == tmp_path / "env-cache" / "model.onnx"
    assert resolve(str(tmp_path / "c" / "model.onnx"), "pose") == tmp_path / "c" / "model.onnx"
    with pytest.raises(UserError, match="not a pose model"):
        resolve("test-det", "pose")
    with pytest.raises(UserError, match="hrnet-w32-coco"):
        resolve("no-such-model", "pose")
    assert run_cli(registry.main, ["no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err

    checkpoint = tmp_path / "mm.pth"
    torch.save({"meta": {"epoch": 210}, "state_dict": {
        "backbone.conv1.weight": torch.ones(64, 3, 3, 3),
        "keypoint_head.final_layer.weight": torch.ones(17, 32, 1, 1)}}, checkpoint)
    server.files["/mm.pth"] = checkpoint.read_bytes()
    monkeypatch.setitem(registry.REGISTRY, "test-pose", ModelEntry(
        "test-pose", "pose", server.url + "/mm.pth", "mm.pth", converter="mmpose"))
    converted = fetch("test-pose", tmp_path / "c", progress=False)
    assert converted.name == "test-pose.pth"
    state = torch.load(converted, weights_only=True)
    assert set(state) == {"conv1.weight", "final_layer.weight"}


def test_registry_entries_are_well_formed():
    for name, entry in registry.REGISTRY.items():
        assert entry.name == name and entry.kind in ("pose", "detector")
        assert entry.url.startswith("https://") and entry.url.endswith(entry.filename)
        if entry.kind == "pose":
            assert entry.converter == "mmpose" and entry.sha256_prefix in entry.filename

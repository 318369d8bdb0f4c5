"""`python -m tracker --serve [HOST:]PORT`: the run's live view over HTTP, for machines without a screen.

Routes (GET only; any other path is 404, any other method 405):
  /                 a page with each source's annotated video, FPS, latency and track table
  /stream.mjpg      the annotated frames as MJPEG (multipart/x-mixed-replace); ?source=N
  /tracks           the latest frame's JSONL line (JSON); ?source=N; 503 before the first frame
  /events           Server-Sent Events: per frame, its JSONL line, then an `event: stats` line
                    with frame, fps and latency_ms; ?source=N

The socket is bound when the run starts, before any model loads (a port in use is a UserError),
and the routes are served from a thread per connection (the standard library's
ThreadingHTTPServer) once the streams are open. The pipeline only publishes into `LiveView`s
(tracker.serve_views); nothing a viewer does reaches it. A viewer that stops reading is dropped
after SEND_TIMEOUT_S; closing the server (end of input, Ctrl+C) ends every response at once.
Safe by default: 127.0.0.1 unless a host is given (and there, only requests for a loopback
name), no file is served from the disk, and with a token (--serve-token or TRACKER_SERVE_TOKEN)
every route wants it, as `?token=` or `Authorization: Bearer`.
"""

from __future__ import annotations

import argparse
import errno
import hmac
import json
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from engines.errors import UserError
from tracker.serve_page import page_html
from tracker.serve_views import LiveView, Published

__all__ = ["LiveServer", "serve_address", "TOKEN_VARIABLE", "ROUTES"]

TOKEN_VARIABLE = "TRACKER_SERVE_TOKEN"
ROUTES = ("/", "/stream.mjpg", "/tracks", "/events")
BOUNDARY = "frame"
# a viewer whose socket takes nothing for this long is dropped (its thread ends)
SEND_TIMEOUT_S = 30.0
# how often a waiting stream looks up: an SSE comment then tells a vanished viewer from a quiet run
IDLE_S = 15.0
MAX_CONNECTIONS = 64
LOOPBACK_NAMES = ("localhost", "::1")


def serve_address(text: str) -> tuple[str, int]:
    """argparse type: PORT, HOST:PORT or [IPV6]:PORT -> (host, port); host 127.0.0.1 by default,
    port 0 for any free one."""
    host, _, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"must be [HOST:]PORT with PORT 0 to 65535, got {text!r}")
    return host or "127.0.0.1", int(port)


class LiveServer:
    """`with LiveServer(address, token) as server:` binds at once; start(streams) serves them;
    publish(stream) is the pipeline's on_frame for it; leaving closes every connection."""

    def __init__(self, address: tuple[str, int], token: str | None = None):
        host, port = address
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        except socket.gaierror as exc:
            raise UserError(f"--serve: unknown host {host!r} ({exc.strerror})") from None
        try:
            self._httpd = _Server((host, port), family, self)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"--serve: port {port} on {host} is in use; choose another "
                                f"(0 takes any free one)") from None
            raise UserError(f"--serve: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.token = token
        self.views: list[LiveView] = []
        self._by_stream: dict[int, LiveView] = {}
        self.page = b""
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self._httpd.server_address[0]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def start(self, streams: list) -> None:
        """Serve the pipeline streams `streams` (in --source order) and say the URL on stderr."""
        self.views = [LiveView(stream.name) for stream in streams]
        self._by_stream = {id(stream): view for stream, view in zip(streams, self.views)}
        self.page = page_html([view.name for view in self.views])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="serve", daemon=True)
        self._thread.start()
        notes = [] if self.token is None else ["the token is required: add ?token=..."]
        if not self._httpd.server_address[0].startswith(("127.", "::1")) and self.token is None:
            notes.append("anyone who reaches this machine sees the video; --serve-token limits that")
        print(f"serving the live view on {self.url}" + "".join(f" ({note})" for note in notes),
              file=sys.stderr, flush=True)

    def publish(self, stream) -> None:
        """The pipeline's on_frame: hand the stream's latest frame to its view."""
        frame = stream.last_frame
        self._by_stream[id(stream)].publish(
            frame.index, frame.timestamp, stream.source.file_name(frame.index), stream.last_tracks,
            stream.last_image, stream.latency_ms.get("latency", 0.0))

    def close(self) -> None:
        """End every response and stop serving (the views say the run ended; sockets blocked in
        a send to a stalled viewer are shut down)."""
        for view in self.views:
            view.close()
        if self._thread is not None:
            self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()

    def __enter__(self) -> "LiveServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True       # a handler never holds the process open
    block_on_close = False

    def __init__(self, address: tuple[str, int], family: int, live: LiveServer):
        self.address_family = family
        self.live = live
        self.loopback = address[0] in LOOPBACK_NAMES or address[0].startswith("127.")
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:   # [::] means IPv6 only, not IPv4 too
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()

    def process_request(self, request, client_address) -> None:
        with self._lock:
            full = len(self._connections) >= MAX_CONNECTIONS
            if not full:
                self._connections.add(request)
        if full:
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        # a viewer that went away, stalled past the timeout or was cut off at the end is no error
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "pose-tracker"
    timeout = SEND_TIMEOUT_S

    def log_message(self, format, *args) -> None:
        """No access log: stderr is the run's (progress, warnings)."""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if not self._host_allowed() or not self._authorised(query):
            return
        if parts.path not in ROUTES:
            return self._plain(HTTPStatus.NOT_FOUND, f"no such page: {parts.path}")
        if parts.path == "/":
            return self._send(HTTPStatus.OK, "text/html; charset=utf-8", self.server.live.page)
        view = self._view(query)
        if view is None:
            return
        if parts.path == "/tracks":
            latest = view.latest()
            if latest is None:
                self.send_response(HTTPStatus.SERVICE_UNAVAILABLE)
                self.send_header("Retry-After", "1")
                return self._finish("application/json", b'{"error":"no frame yet"}')
            return self._send(HTTPStatus.OK, "application/json", _json(latest.record))
        if parts.path == "/stream.mjpg":
            return self._mjpeg(view)
        return self._events(view)

    def _not_allowed(self) -> None:
        path = urlsplit(self.path).path
        if path not in ROUTES:
            return self._plain(HTTPStatus.NOT_FOUND, f"no such page: {path}")
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET")
        self._finish("text/plain; charset=utf-8", b"only GET\n")

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def _host_allowed(self) -> bool:
        """On a loopback address only requests for a loopback name: a web page whose own name was
        made to point at 127.0.0.1 (DNS rebinding) cannot read the run from a visitor's browser."""
        host = urlsplit(f"//{self.headers.get('Host', '')}").hostname
        if not self.server.loopback or host is None or host in LOOPBACK_NAMES or host.startswith("127."):
            return True
        self._plain(HTTPStatus.FORBIDDEN, f"host {host!r} not allowed: the server listens on a loopback address")
        return False

    def _authorised(self, query: dict) -> bool:
        """True without a token; else the token must come in ?token= or Authorization: Bearer
        (401 when none does, 403 when it is wrong)."""
        token = self.server.live.token
        if token is None:
            return True
        given = query.get("token", [None])[0]
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if given is None and scheme.lower() == "bearer":
            given = value.strip()
        if given is None:
            self.send_response(HTTPStatus.UNAUTHORIZED)
            self.send_header("WWW-Authenticate", 'Bearer realm="pose tracker"')
            self._finish("text/plain; charset=utf-8", b"a token is required: ?token=... or Authorization: Bearer\n")
            return False
        if not hmac.compare_digest(given.encode(), token.encode()):
            self._plain(HTTPStatus.FORBIDDEN, "wrong token")
            return False
        return True

    def _view(self, query: dict) -> LiveView | None:
        views = self.server.live.views
        text = query.get("source", ["0"])[0]
        if not text.isdigit():
            self._plain(HTTPStatus.BAD_REQUEST, f"source must be a number, got {text!r}")
            return None
        if int(text) >= len(views):
            self._plain(HTTPStatus.NOT_FOUND, f"no source {text} (sources 0 to {len(views) - 1})")
            return None
        return views[int(text)]

    def _mjpeg(self, view: LiveView) -> None:
        """The newest frame each time the viewer can take one. Each part is followed by the next
        boundary at once: browsers show a part when they see the boundary after it."""
        self._stream_head(f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.wfile.write(f"--{BOUNDARY}\r\n".encode())
        seq = sent = 0
        while (items := view.newer(seq, IDLE_S)) is not None:
            seq = items[-1].seq if items else seq
            picture = view.picture()
            if picture is None or picture.seq <= sent:
                continue
            sent = picture.seq
            self.wfile.write(f"Content-Type: image/jpeg\r\nContent-Length: {len(picture.jpeg)}\r\n\r\n".encode()
                             + picture.jpeg + f"\r\n--{BOUNDARY}\r\n".encode())

    def _events(self, view: LiveView) -> None:
        """From the newest frame on, every kept frame after the last one sent, in order; a comment
        when the run is quiet."""
        self._stream_head("text/event-stream")
        self.wfile.write(b"retry: 1000\n\n")
        latest = view.latest()
        seq = latest.seq - 1 if latest is not None else 0
        while (items := view.newer(seq, IDLE_S)) is not None:
            if not items:
                self.wfile.write(b": idle\n\n")
            for item in items:
                self.wfile.write(_event(item))
            seq = items[-1].seq if items else seq

    def _stream_head(self, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self._finish(content_type, body)

    def _plain(self, status: HTTPStatus, text: str) -> None:
        self._send(status, "text/plain; charset=utf-8", f"{text}\n".encode())

    def _finish(self, content_type: str, body: bytes) -> None:
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


def _json(record: dict) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


def _event(item: Published) -> bytes:
    stats = {"frame": item.frame_index, "fps": round(item.fps, 2), "latency_ms": round(item.latency_ms, 1)}
    return b"data: " + _json(item.record) + b"\n\nevent: stats\ndata: " + _json(stats) + b"\n\n"

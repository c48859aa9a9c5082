"""A real upstream for the route-policy tests: cache-control knobs, OpenAPI documents, a
WebSocket echo server, and a record of what each request carried (stdlib and `websockets`)."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from tests.policies.documents import OPENAPI_30, openapi_31

HOST = "127.0.0.1"
FLOOD_MESSAGE_BYTES = 256 * 1024


@dataclass
class Seen:
    """What the upstream received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class PolicyUpstream:
    """The servers and their record."""

    http_url: str = ""
    ws_url: str = ""
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ws_open: int = 0  # WebSocket connections the echo server holds right now
    flood_sent: int = 0  # bytes the echo server sent for `flood` commands so far
    close_codes: list[int | None] = field(default_factory=list)  # close codes it received

    def count(self, prefix: str = "/") -> int:
        """Requests received whose path starts with `prefix`."""
        with self.lock:
            return sum(1 for s in self.seen if s.path.startswith(prefix))

    def last(self) -> Seen:
        """The most recent request."""
        with self.lock:
            return self.seen[-1]

    def reset(self) -> None:
        """Forget what was received."""
        with self.lock:
            self.seen.clear()
            self.flood_sent = 0
            self.close_codes.clear()


def _handler(upstream: PolicyUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, 1024 * 1024)) if length else b""
            parts = urlsplit(self.path)
            with upstream.lock:
                upstream.seen.append(
                    Seen(
                        self.command,
                        parts.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                    )
                )
                count = len(upstream.seen)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/openapi.json":
                self._json(200, OPENAPI_30)
                return
            if parts.path == "/openapi31.json":
                self._json(200, openapi_31())
                return
            extra: list[tuple[str, str]] = [("X-Powered-By", "upstream")]
            if "cc" in query:
                extra.append(("Cache-Control", query["cc"]))
            if "vary" in query:
                extra.append(("Vary", query["vary"]))
            if "cookie" in query:
                extra.append(("Set-Cookie", "session=abc; HttpOnly"))
            status = int(query.get("status", "200"))
            payload = {
                "n": count,
                "path": parts.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
            self._json(status, payload, extra)

        def _json(self, status: int, payload: Any, extra: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    return Handler


def _echo(upstream: PolicyUpstream) -> Callable[[ServerConnection], None]:
    """Echo every message. Commands: `close` (the server closes), `reset` (the server resets
    the TCP connection), `flood N` (the server sends N bytes in binary messages)."""

    def echo(connection: ServerConnection) -> None:
        with upstream.lock:
            upstream.ws_open += 1
        try:
            _serve_echo(upstream, connection)
        except ConnectionClosed:
            pass  # a peer gone without a close frame (raw-socket tests do that on purpose)
        finally:
            with upstream.lock:
                upstream.ws_open -= 1
                upstream.close_codes.append(connection.close_code)

    return echo


def _serve_echo(upstream: PolicyUpstream, connection: ServerConnection) -> None:
    for message in connection:
        if message == "close":
            connection.close(code=1000, reason="server closes")
            return
        if message == "reset":
            linger_zero = struct.pack("ii", 1, 0)
            connection.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_zero)
            connection.socket.close()
            return
        if isinstance(message, str) and message.startswith("flood "):
            _flood(upstream, connection, int(message.split()[1]))
            continue
        connection.send(message)


def _flood(upstream: PolicyUpstream, connection: ServerConnection, total: int) -> None:
    chunk = b"\0" * FLOOD_MESSAGE_BYTES
    sent = 0
    while sent < total:
        part = chunk[: min(FLOOD_MESSAGE_BYTES, total - sent)]
        connection.send(part)  # blocks while the peer (the gateway) does not take more
        sent += len(part)
        with upstream.lock:
            upstream.flood_sent += len(part)


@contextmanager
def policy_upstream() -> Iterator[PolicyUpstream]:
    """Run the HTTP upstream and the WebSocket echo server on free loopback ports."""
    upstream = PolicyUpstream()
    http_server = ThreadingHTTPServer((HOST, 0), _handler(upstream))
    http_server.daemon_threads = True
    ws_server = serve(_echo(upstream), HOST, 0)
    threads = [
        threading.Thread(
            target=http_server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ),
        threading.Thread(target=ws_server.serve_forever, daemon=True),
    ]
    for thread in threads:
        thread.start()
    upstream.http_url = f"http://{HOST}:{http_server.server_address[1]}"
    upstream.ws_url = f"http://{HOST}:{ws_server.socket.getsockname()[1]}"
    try:
        yield upstream
    finally:
        http_server.shutdown()
        http_server.server_close()
        ws_server.shutdown()
        for thread in threads:
            thread.join(5)

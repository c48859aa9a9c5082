"""A real, bounded HTTP/1.1 upstream server for the gateway's proxy tests (stdlib only).

Behaviour is chosen by the first path segment equal to one of the keywords below; the segment
after it is the argument.  Any other path behaves like ``echo``.

- ``echo``                  200 JSON describing the request (the default).
- ``status/<code>``         that status (200-599) with ``{"status": code}``; no body for 204/304.
- ``slow/<ms>``             sleeps ``ms`` (cap 30000) then answers like ``echo``.
- ``big/<bytes>``           200 octet-stream of exactly that many ``b"x"`` (cap 4 GiB), streamed.
- ``chunked/<n>``           ``Transfer-Encoding: chunked``, ``n`` chunks of ``b"chunk\\n"``.
- ``redirect``              302 to ``/echo/redirected`` with an empty body.
- ``flaky/<n>``             first ``n`` requests per distinct path: connection dropped, no reply.
- ``headers-big/<bytes>``   200 with an ``X-Big`` header of that many ``a`` (cap 1 MiB).
- ``openapi.json``          a small OpenAPI 3.0 document.
- ``health``                200 ``{"status": "ok"}``.
- ``cookies/<n>``           200 with ``n`` separate ``Set-Cookie`` headers (cap 20).

Every response carries ``X-Upstream: <name>``.  ``?hop=1`` adds hop-by-hop headers
(``Connection: X-Hop``, ``X-Hop: secret``, ``Keep-Alive: timeout=5``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["ReceivedRequest", "UpstreamServer"]

HOST = "127.0.0.1"
IO_CHUNK = 64 * 1024
BODY_SAMPLE = 64 * 1024
SOCKET_TIMEOUT = 30.0
MAX_SLOW_MS = 30_000
MAX_BIG_BYTES = 4 * 1024**3
MAX_CHUNKS = 1_000_000
MAX_BIG_HEADER = 1024 * 1024
MAX_CHUNK_LINE = 4096
MAX_TRAILERS = 100
SLEEP_STEP = 0.01
JOIN_TIMEOUT = 5.0

KEYWORDS = frozenset(
    {
        "echo",
        "status",
        "slow",
        "big",
        "chunked",
        "redirect",
        "flaky",
        "headers-big",
        "openapi.json",
        "health",
        "cookies",
    }
)
NEEDS_ARG = frozenset({"status", "slow", "big", "chunked", "flaky", "headers-big", "cookies"})


@dataclass
class ReceivedRequest:
    """One request as the upstream saw it (body hashed in full, sampled to 64 KiB)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    header_list: list[tuple[str, str]]
    body_length: int
    body_sha256: str
    body: bytes = field(repr=False)


class _BadRequest(Exception):
    """The request body framing is invalid; answer 400 and close."""


class _BadArgument(_BadRequest):
    """The path argument is invalid; answer 400 but keep the connection."""


class _Aborted(Exception):
    """The server is stopping (or the request is dropped); close without a reply."""


class _BodySink:
    """Hashes a streamed body and keeps only its first 64 KiB."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.length = 0
        self.sample = bytearray()

    def feed(self, data: bytes) -> None:
        """Account for one piece of the body."""
        self.sha.update(data)
        self.length += len(data)
        room = BODY_SAMPLE - len(self.sample)
        if room > 0:
            self.sample += data[:room]


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks open connections and never prints tracebacks."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, upstream: UpstreamServer, address: tuple[str, int]) -> None:
        self.upstream = upstream
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Register the connection (in the serving thread, so stop() sees it) and dispatch."""
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection and close it."""
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def abort_connections(self) -> None:
        """Shut down every open client connection (idle keep-alive ones included)."""
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Record unexpected handler errors instead of printing them."""
        self.upstream._record_error(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    """Request handler implementing the keyword behaviours."""

    protocol_version = "HTTP/1.1"
    server_version = "TestUpstream/1.0"
    timeout = SOCKET_TIMEOUT
    disable_nagle_algorithm = True
    server: _Server
    hop: bool = False

    # --- plumbing -------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent."""

    @property
    def upstream(self) -> UpstreamServer:
        """The owning UpstreamServer."""
        return self.server.upstream

    def do_GET(self) -> None:
        """Handle GET."""
        self._handle()

    def do_POST(self) -> None:
        """Handle POST."""
        self._handle()

    def do_PUT(self) -> None:
        """Handle PUT."""
        self._handle()

    def do_PATCH(self) -> None:
        """Handle PATCH."""
        self._handle()

    def do_DELETE(self) -> None:
        """Handle DELETE."""
        self._handle()

    def do_HEAD(self) -> None:
        """Handle HEAD (headers only)."""
        self._handle()

    def do_OPTIONS(self) -> None:
        """Handle OPTIONS."""
        self._handle()

    def _handle(self) -> None:
        try:
            self._dispatch()
        except _BadRequest as exc:
            if not isinstance(exc, _BadArgument):
                self.close_connection = True
            with contextlib.suppress(OSError):
                self._send_json(400, {"error": str(exc)})
        except _Aborted:
            self._drop()
        except OSError:
            # Client went away, broken pipe, reset, socket timeout: just close.
            self.close_connection = True
        except Exception:
            self.upstream._record_error(traceback.format_exc())
            self._drop()

    def _drop(self) -> None:
        """Close the connection abruptly without any response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # --- request ----------------------------------------------------------------------------

    def _read_exact(self, n: int, sink: _BodySink) -> None:
        while n > 0:
            data = self.rfile.read(min(n, IO_CHUNK))
            if not data:
                raise ConnectionAbortedError("client closed mid-body")
            sink.feed(data)
            n -= len(data)

    def _read_line(self) -> bytes:
        line = self.rfile.readline(MAX_CHUNK_LINE + 1)
        if not line:
            raise ConnectionAbortedError("client closed mid-body")
        if len(line) > MAX_CHUNK_LINE or not line.endswith(b"\n"):
            raise _BadRequest("chunk line too long")
        return line

    def _read_chunked(self, sink: _BodySink) -> None:
        while True:
            size_text = self._read_line().split(b";", 1)[0].strip()
            if not size_text or len(size_text) > 16:
                raise _BadRequest("bad chunk size")
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BadRequest("bad chunk size") from None
            if size < 0 or size_text.startswith((b"+", b"-")):
                raise _BadRequest("bad chunk size")
            if size == 0:
                break
            self._read_exact(size, sink)
            if self._read_line().strip():
                raise _BadRequest("missing CRLF after chunk data")
        for _ in range(MAX_TRAILERS):
            if not self._read_line().strip():
                return
        raise _BadRequest("too many trailers")

    def _read_body(self) -> _BodySink:
        sink = _BodySink()
        encodings = [
            token.strip().lower()
            for value in self.headers.get_all("Transfer-Encoding", [])
            for token in value.split(",")
            if token.strip()
        ]
        if encodings:
            if encodings[-1] != "chunked":
                raise _BadRequest("unsupported transfer-encoding")
            if self.headers.get("Content-Length") is not None:
                self.close_connection = True  # ambiguous framing: never reuse
            self._read_chunked(sink)
            return sink
        lengths = {
            token.strip()
            for value in self.headers.get_all("Content-Length", [])
            for token in value.split(",")
        }
        if not lengths:
            return sink
        if len(lengths) != 1:
            raise _BadRequest("conflicting content-length")
        text = lengths.pop()
        if not text.isdigit():
            raise _BadRequest("bad content-length")
        self._read_exact(int(text), sink)
        return sink

    # --- response ---------------------------------------------------------------------------

    def _common_headers(self) -> None:
        self.send_header("X-Upstream", self.upstream.name)
        if self.hop:
            self.send_header("Connection", "close, X-Hop" if self.close_connection else "X-Hop")
            self.send_header("X-Hop", "secret")
            self.send_header("Keep-Alive", "timeout=5")
        elif self.close_connection:
            self.send_header("Connection", "close")

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        extra: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Send a complete response with Content-Length (none for 204/304)."""
        bodiless = status in (204, 304)
        self.send_response(status)
        self._common_headers()
        if content_type and not bodiless:
            self.send_header("Content-Type", content_type)
        for name, value in extra:
            self.send_header(name, value)
        if not bodiless:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not bodiless and self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: object) -> None:
        body = json.dumps(payload, sort_keys=True).encode()
        self._send(status, body, "application/json")

    def _echo(self, req: ReceivedRequest) -> None:
        self._send_json(
            200,
            {
                "server": self.upstream.name,
                "method": req.method,
                "path": req.path,
                "query": req.query,
                "headers": req.headers,
                "body_length": req.body_length,
                "body_sha256": req.body_sha256,
            },
        )

    def _big(self, size: int) -> None:
        self.send_response(200)
        self._common_headers()
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command == "HEAD":
            return
        block = memoryview(b"x" * IO_CHUNK)
        stopping = self.upstream._stopping
        remaining = size
        while remaining > 0:
            if stopping.is_set():
                raise _Aborted
            n = min(remaining, IO_CHUNK)
            self.wfile.write(block[:n])
            remaining -= n

    def _chunked(self, count: int) -> None:
        self.send_response(200)
        self._common_headers()
        self.send_header("Content-Type", "text/plain")
        http11 = self.request_version == "HTTP/1.1"
        if http11:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True  # HTTP/1.0 client: delimit by close
        self.end_headers()
        if self.command == "HEAD":
            return
        piece = b"6\r\nchunk\n\r\n" if http11 else b"chunk\n"
        stopping = self.upstream._stopping
        for _ in range(count):
            if stopping.is_set():
                raise _Aborted
            self.wfile.write(piece)
        if http11:
            self.wfile.write(b"0\r\n\r\n")

    def _sleep(self, ms: int) -> None:
        deadline = time.monotonic() + ms / 1000.0
        stopping = self.upstream._stopping
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if stopping.wait(min(SLEEP_STEP, left)):
                raise _Aborted

    def _dispatch(self) -> None:
        if self.upstream._stopping.is_set():
            raise _Aborted
        path, _, query = self.path.partition("?")
        self.hop = "hop=1" in query.split("&")
        segments = path.split("/")
        kind, arg = "echo", ""
        for i, segment in enumerate(segments):
            if segment in KEYWORDS:
                kind = segment
                arg = segments[i + 1] if i + 1 < len(segments) else ""
                break

        sink = self._read_body()
        header_list = [(str(k), str(v)) for k, v in self.headers.items()]
        headers: dict[str, str] = {}
        for name, value in header_list:
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        req = ReceivedRequest(
            method=self.command,
            path=path,
            query=query,
            headers=headers,
            header_list=header_list,
            body_length=sink.length,
            body_sha256=sink.sha.hexdigest(),
            body=bytes(sink.sample),
        )
        self.upstream._record(req)

        number = 0
        if kind in NEEDS_ARG:
            if not arg.isdigit() or len(arg) > 12:
                raise _BadArgument(f"{kind} needs a non-negative integer argument")
            number = int(arg)

        if kind == "status":
            if not 200 <= number <= 599:
                raise _BadArgument("status code must be 200-599")
            self._send_json(number, {"status": number})
        elif kind == "slow":
            self._sleep(min(number, MAX_SLOW_MS))
            self._echo(req)
        elif kind == "big":
            self._big(min(number, MAX_BIG_BYTES))
        elif kind == "chunked":
            self._chunked(min(number, MAX_CHUNKS))
        elif kind == "redirect":
            self._send(302, b"", None, [("Location", "/echo/redirected")])
        elif kind == "flaky":
            if self.upstream._flaky_hit(path) <= number:
                raise _Aborted
            self._echo(req)
        elif kind == "headers-big":
            size = min(number, MAX_BIG_HEADER)
            body = json.dumps({"x_big_length": size}).encode()
            self._send(200, body, "application/json", [("X-Big", "a" * size)])
        elif kind == "openapi.json":
            self._send_json(200, self.upstream.openapi_document())
        elif kind == "health":
            self._send_json(200, {"status": "ok"})
        elif kind == "cookies":
            cookies = [
                ("Set-Cookie", f"c{i}=v{i}; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT")
                for i in range(min(number, 20))
            ]
            self._send(200, b"{}", "application/json", cookies)
        else:
            self._echo(req)


class UpstreamServer:
    """A threaded HTTP/1.1 test upstream on 127.0.0.1 with a random free port."""

    def __init__(self, name: str = "upstream") -> None:
        self.name = name
        self.received: list[ReceivedRequest] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._flaky: dict[str, int] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Bind and serve in a daemon thread (a restart reuses the previous port)."""
        if self._server is not None:
            raise RuntimeError(f"upstream {self.name!r} already started")
        self._stopping.clear()
        server = _Server(self, (HOST, self._port or 0))
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"upstream-{self.name}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving: close the listener (connects are refused) and all open connections."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.abort_connections()
        if thread is not None:
            thread.join(JOIN_TIMEOUT)
        self._server = None
        self._thread = None

    def __enter__(self) -> UpstreamServer:
        """Start and return self."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    # --- inspection -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._port is None:
            raise RuntimeError(f"upstream {self.name!r} was never started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    def count(self, path_prefix: str = "/") -> int:
        """Number of received requests whose path starts with ``path_prefix``."""
        with self._lock:
            return sum(1 for r in self.received if r.path.startswith(path_prefix))

    def reset(self) -> None:
        """Clear received requests, errors and flaky counters."""
        with self._lock:
            self.received.clear()
            self.errors.clear()
            self._flaky.clear()

    def openapi_document(self) -> dict[str, Any]:
        """The OpenAPI 3.0 document served at ``openapi.json``."""
        task_ref = {"$ref": "#/components/schemas/Task"}
        return {
            "openapi": "3.0.3",
            "info": {"title": f"{self.name} tasks API", "version": "1.0.0"},
            "paths": {
                "/tasks": {
                    "get": {
                        "operationId": "listTasks",
                        "summary": "List tasks",
                        "responses": {
                            "200": {
                                "description": "All tasks",
                                "content": {
                                    "application/json": {
                                        "schema": {"type": "array", "items": task_ref}
                                    }
                                },
                            }
                        },
                    },
                    "post": {
                        "operationId": "createTask",
                        "summary": "Create a task",
                        "requestBody": {
                            "required": True,
                            "content": {"application/json": {"schema": task_ref}},
                        },
                        "responses": {
                            "201": {
                                "description": "Created",
                                "content": {"application/json": {"schema": task_ref}},
                            }
                        },
                    },
                },
                "/tasks/{id}": {
                    "get": {
                        "operationId": "getTask",
                        "summary": "Get one task",
                        "parameters": [
                            {
                                "name": "id",
                                "in": "path",
                                "required": True,
                                "schema": {"type": "string"},
                            }
                        ],
                        "responses": {
                            "200": {
                                "description": "The task",
                                "content": {"application/json": {"schema": task_ref}},
                            },
                            "404": {"description": "Not found"},
                        },
                    }
                },
                "/internal/debug": {
                    "get": {
                        "operationId": "internalDebug",
                        "summary": "Internal debug information",
                        "responses": {"200": {"description": "Debug info"}},
                    }
                },
            },
            "components": {
                "schemas": {
                    "Task": {
                        "type": "object",
                        "required": ["title"],
                        "properties": {
                            "id": {"type": "string"},
                            "title": {"type": "string"},
                            "done": {"type": "boolean"},
                        },
                    }
                }
            },
        }

    # --- internal (called from handler threads) -------------------------------------------

    def _record(self, req: ReceivedRequest) -> None:
        with self._lock:
            self.received.append(req)

    def _record_error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)

    def _flaky_hit(self, path: str) -> int:
        """Count a request to a flaky path; returns its 1-based ordinal."""
        with self._lock:
            hits = self._flaky.get(path, 0) + 1
            self._flaky[path] = hits
            return hits

"""A scripted raw upstream: answers each request with exact bytes, then closes or resets.

Tests register an answer per path (`script(path, answer, then=...)`); the server reads one request
head per connection, sends the scripted bytes verbatim (malformed heads included) and then
closes the connection ("close") or resets it ("reset": SO_LINGER 0, the peer sees RST).
Unscripted paths get a plain 404. Bounded: each connection reads at most 64 KiB within 10 s.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass
from types import TracebackType

_MAX_HEAD = 64 * 1024
_READ_TIMEOUT = 10.0
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class Script:
    """What to send for one path, and how to end the connection afterwards."""

    answer: bytes
    then: str = "close"  # close | reset


class RawUpstream:
    """A loopback TCP server sending scripted answers, one request per connection."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = int(self._listener.getsockname()[1])
        self._scripts: dict[str, Script] = {}
        self._lock = threading.Lock()
        self.heads: list[bytes] = []  # every request head received, in order
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="raw-upstream", daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, path: str, answer: bytes, *, then: str = "close") -> str:
        """Answer requests for `path` with `answer`; returns the path."""
        with self._lock:
            self._scripts[path] = Script(answer, then)
        return path

    def count(self, path: str) -> int:
        """How many requests for `path` arrived."""
        with self._lock:
            prefix = f" {path} ".encode()
            return sum(1 for head in self.heads if prefix in head.split(b"\r\n", 1)[0])

    def start(self) -> RawUpstream:
        """Start accepting."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting (open connections finish on their own, bounded by the read timeout)."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(_READ_TIMEOUT)
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < _MAX_HEAD:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    head += chunk
            except OSError:
                return
            parts = head.split(b"\r\n", 1)[0].split(b" ")
            path = parts[1].decode("latin-1").split("?", 1)[0] if len(parts) > 1 else ""
            with self._lock:
                self.heads.append(head)
                script = self._scripts.get(path, Script(_NOT_FOUND))
            try:
                conn.sendall(script.answer)
                if script.then == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    conn.shutdown(socket.SHUT_WR)
                    # Wait (bounded) for the gateway to close its side, so nothing unread
                    # turns our close into a reset.
                    with contextlib.suppress(OSError):
                        conn.settimeout(2.0)
                        while conn.recv(65536):
                            pass
            except OSError:
                return

    def __enter__(self) -> RawUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""A strict HTTP/1.1 response reader for keep-alive tests: what a careful client would accept.

Reads one response off a socket, checking every head line (CRLF endings, no bare CR or NUL,
token names) and the framing, so a test can tell a well-formed answer, a connection that was
closed (short body), and a desync (garbage where the next response should start).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

_STATUS = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) [\t\x20-\x7e\x80-\xff]*")
_HEADER = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[\t\x20-\x7e\x80-\xff]*")
_CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]{1,8})(?:;[^\r\n]*)?")
_MAX_HEAD = 256 * 1024


class Malformed(AssertionError):
    """The bytes on the wire are not a well-formed HTTP/1.1 response (a desync or a bug)."""


@dataclass
class Answer:
    """One response as read: `complete` is False when the connection ended inside the body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    complete: bool

    def header(self, name: str) -> str | None:
        """The first value of header `name`, or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class Http1Reader:
    """Reads successive responses from one client socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self._buffer += chunk
        return True

    def _take(self, size: int) -> bytes:
        while len(self._buffer) < size and self._fill():
            pass
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _line(self) -> bytes | None:
        while b"\r\n" not in self._buffer:
            if len(self._buffer) > _MAX_HEAD:
                raise Malformed("head line too long")
            if not self._fill():
                return None
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def read(self, *, method: str = "GET") -> Answer | None:
        """The next response, or None when the server closed the connection before one."""
        line = self._line()
        if line is None:
            if self._buffer:
                raise Malformed(f"connection ended inside a head: {self._buffer[:80]!r}")
            return None
        match = _STATUS.fullmatch(line)
        if not match:
            raise Malformed(f"not a status line: {line[:80]!r}")
        status = int(match[1])
        headers: list[tuple[str, str]] = []
        while (line := self._line()) != b"":
            if line is None:
                raise Malformed("connection ended inside a head")
            if b"\r" in line or not _HEADER.fullmatch(line):
                raise Malformed(f"malformed header line: {line[:80]!r}")
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        answer = Answer(status, headers, b"", True)
        codings = [v for k, v in headers if k.lower() == "transfer-encoding"]
        lengths = [v for k, v in headers if k.lower() == "content-length"]
        if codings and lengths:
            raise Malformed("both Transfer-Encoding and Content-Length")
        if method == "HEAD" or status in (204, 304) or status < 200:
            return answer
        if codings:
            if [c.lower() for c in codings] != ["chunked"]:
                raise Malformed(f"unexpected Transfer-Encoding {codings}")
            return self._chunked(answer)
        if lengths:
            if len(set(lengths)) != 1 or not lengths[0].isdigit():
                raise Malformed(f"bad Content-Length {lengths}")
            size = int(lengths[0])
            answer.body = self._take(size)
            answer.complete = len(answer.body) == size
            return answer
        while self._fill():  # delimited by the end of the connection
            pass
        answer.body, self._buffer = self._buffer, b""
        return answer

    def _chunked(self, answer: Answer) -> Answer:
        body = b""
        while True:
            line = self._line()
            if line is None:
                answer.body, answer.complete = body, False
                return answer
            match = _CHUNK_SIZE.fullmatch(line)
            if not match:
                raise Malformed(f"bad chunk size line: {line[:80]!r}")
            size = int(match[1], 16)
            if size == 0:
                while (trailer := self._line()) not in (b"", None):
                    if not _HEADER.fullmatch(trailer):
                        raise Malformed("bad trailer")
                answer.body = body
                return answer
            data = self._take(size + 2)
            if len(data) < size + 2:
                answer.body, answer.complete = body + data[:size], False
                return answer
            if data[size:] != b"\r\n":
                raise Malformed("chunk not followed by CRLF")
            body += data[:size]

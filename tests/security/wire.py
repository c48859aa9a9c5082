"""Raw-socket helpers: requests a client library would refuse to send or would clean up."""

from __future__ import annotations

import json
import socket
from typing import Any


def raw_exchange(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes to 127.0.0.1:port and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass  # a server refusing a request may reset once it has answered
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP/1.1 answer."""
    return int(answer.split(b" ", 2)[1])


def header_of(answer: bytes, name: str) -> str | None:
    """A header's value in a raw answer (first occurrence), or None."""
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def body_of(answer: bytes) -> bytes:
    """The body of a raw answer, de-chunked when it came chunked."""
    body = answer.split(b"\r\n\r\n", 1)[1]
    if (header_of(answer, "Transfer-Encoding") or "").lower() != "chunked":
        return body
    out = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out, body = out + body[:size], body[size + 2 :]


def problem_of(answer: bytes) -> dict[str, Any]:
    """The problem+json body of a raw answer (asserting the media type)."""
    assert header_of(answer, "Content-Type") == "application/problem+json", answer[:300]
    document: dict[str, Any] = json.loads(body_of(answer))
    assert set(document) >= {"type", "title", "status", "detail", "code", "request_id"}
    return document


def get(path: str, *headers: str, host: str = "127.0.0.1") -> bytes:
    """A GET request's bytes with `Connection: close` and the given extra header lines."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")

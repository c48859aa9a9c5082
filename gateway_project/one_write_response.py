"""gunicorn's Response, sending a plain answer's head and its first body bytes in one write.

gunicorn writes an answer's head, then its body, each with its own sendall(); on a socket with
a timeout (the worker bounds client reads and writes) CPython polls before each send, so a
small answer took four system calls, each releasing the GIL: with eight request threads per
worker, each release is a point where another thread takes the GIL and this answer waits for
it back. Here the first write of a body that needs no chunk framing goes out with the head.
Everything else (chunked, no body, HEAD, a write past Content-Length, later writes, streamed
answers after their first chunk) is gunicorn's own path.
"""

from __future__ import annotations

from typing import Any

from gunicorn import util
from gunicorn.http import wsgi


class HeadWithBodyResponse(wsgi.Response):
    """gunicorn's Response whose first plain body write carries the head (module docstring)."""

    def write(self, arg: Any) -> None:
        """The first body bytes of a plain answer together with its head; else as gunicorn."""
        if (
            self.headers_sent  # type: ignore[has-type]
            or self.chunked
            or self._omits_body
            or not isinstance(arg, bytes)
            or not arg
            or (self.response_length is not None and len(arg) > self.response_length)
        ):
            super().write(arg)
            return
        util.write(self.sock, self._head_bytes() + arg)
        self.headers_sent = True
        self.sent += len(arg)

    def _head_bytes(self) -> bytes:
        """The head exactly as gunicorn's send_headers() writes it."""
        lines = self.default_headers()
        lines.extend(["%s: %s\r\n" % (name, value) for name, value in self.headers])  # noqa: UP031 - as gunicorn
        return util.to_bytestring("%s\r\n" % "".join(lines), "latin-1")  # noqa: UP031


def install() -> None:
    """Make gunicorn's request handling create HeadWithBodyResponse (in a worker process)."""
    wsgi.Response = HeadWithBodyResponse

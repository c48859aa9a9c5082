"""gunicorn's Response, sending a plain answer's head and its first body bytes in one write.

gunicorn writes an answer's head, then its body, each with its own sendall(); on a socket with
a timeout (the worker bounds client reads and writes) CPython polls before each send, so a
small answer took four system calls, each releasing the GIL: with eight request threads per
worker, each release is a point where another thread takes the GIL and this answer waits for
it back. Here the first write of a body that needs no chunk framing goes out with the head.
Everything else (chunked, no body, HEAD, a write past Content-Length, later writes, streamed
answers after their first chunk) is gunicorn's own path.

It also checks header names once per name, not once per answer: gunicorn validates each
header's name against the token grammar and looks it up among the hop-by-hop headers on every
answer (a regular expression, two lowercasings and a set lookup per header). A name that
passed as an end-to-end header is remembered; each value is still checked every time.
"""

from __future__ import annotations

from typing import Any

from gunicorn import util
from gunicorn.http import wsgi

# Header names known to be valid tokens, so that only their values need checking, each with
# what gunicorn does with it: _PLAIN (written), _LENGTH (Content-Length: written, and its value
# is the answer's length) or _DROPPED (a hop-by-hop name gunicorn drops after checking its
# value, such as an upstream's Server and Date: gunicorn writes its own). Connection and
# Upgrade are never here (gunicorn notes their values). Bounded in count and in each name's
# length: an upstream inventing names (up to 64 KiB each) cannot grow it past this; further
# names get gunicorn's full check every time.
_KNOWN_NAMES_LIMIT = 1024
_KNOWN_NAME_MAX = 64
_PLAIN, _LENGTH, _DROPPED = range(3)
_known_names: dict[str, int] = {}


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

    def process_headers(self, headers: Any) -> None:
        """gunicorn's checks and filtering, with a known name checked only once."""
        known = _known_names
        valid_value = wsgi.HEADER_VALUE_RE.fullmatch
        for name, value in headers:
            kind = known.get(name) if type(name) is str else None
            # Printable ASCII (SP to ~) is within what gunicorn's value pattern allows, and
            # isascii() and isprintable() find it without the regular expression's per-character
            # set lookups; any other value (a tab, obs-text, a control byte) takes the pattern.
            if (
                kind is not None
                and type(value) is str
                and ((value.isascii() and value.isprintable()) or valid_value(value))
            ):
                if kind == _DROPPED:
                    continue
                value = value.strip(" \t")
                if kind == _LENGTH:
                    self.response_length = int(value)
                self.headers.append((name, value))
                continue
            super().process_headers([(name, value)])  # raises as gunicorn does for a bad one
            # It passed, so the name is a valid token (and a str).
            if len(name) <= _KNOWN_NAME_MAX and len(known) < _KNOWN_NAMES_LIMIT:
                lowered = name.lower()
                if not util.is_hoppish(name):
                    known[name] = _LENGTH if lowered == "content-length" else _PLAIN
                elif lowered not in ("connection", "upgrade"):
                    known[name] = _DROPPED

    def _head_bytes(self) -> bytes:
        """The head exactly as gunicorn's send_headers() writes it."""
        lines = self.default_headers()
        lines.extend(["%s: %s\r\n" % (name, value) for name, value in self.headers])  # noqa: UP031 - as gunicorn
        return util.to_bytestring("%s\r\n" % "".join(lines), "latin-1")  # noqa: UP031


def install() -> None:
    """Make gunicorn's request handling create HeadWithBodyResponse (in a worker process)."""
    wsgi.Response = HeadWithBodyResponse

"""Client framing rules gunicorn leaves to the application: Host, absolute-form targets, bodies.

RFC 9112 section 3.2: an HTTP/1.1 request without exactly one Host is a 400, and an
absolute-form request target's authority replaces Host (so ALLOWED_HOSTS judges the authority
the request really names). A chunked body that breaks off or is malformed is a 400 and the
connection closes: where the next request would start is unknown. This module imports nothing
from Django: the worker applies it to gunicorn's parsed request before the application runs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from gunicorn.http.errors import NoMoreData, ParseException


class MissingHost(ParseException):
    """An HTTP/1.1 request without a Host header."""


class RepeatedHost(ParseException):
    """A request with more than one Host header."""


class InvalidAbsoluteTarget(ParseException):
    """An absolute-form request target that is not an http(s) URL with a plain authority."""


class MalformedBody(Exception):
    """A request body whose framing (chunk sizes, terminators) is malformed or cut short.

    Raised to the application from `wsgi.input`, which renders it as 400 problem+json
    (gateway_project.errors); the connection is closed after the answer.
    """


def apply_request_target(req: Any) -> None:
    """Check Host and an absolute-form target; the target's authority becomes the Host."""
    hosts = 0
    for name, _ in req.headers:
        if name == "HOST":
            hosts += 1
    if hosts > 1:
        raise RepeatedHost("more than one Host header")
    uri = req.uri or ""
    if uri[:1] != "/" and "://" in uri.split("?", 1)[0]:
        parts = urlsplit(uri)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise InvalidAbsoluteTarget("absolute-form target without an http(s) authority")
        if "@" in parts.netloc:  # userinfo is not allowed in an http(s) target (RFC 9110 4.2.4)
            raise InvalidAbsoluteTarget("absolute-form target with userinfo")
        req.headers = [(n, v) for n, v in req.headers if n != "HOST"] + [("HOST", parts.netloc)]
        return
    if not hosts and tuple(req.version or (1, 0)) >= (1, 1):
        raise MissingHost("HTTP/1.1 request without Host")


class GuardedBody:
    """`wsgi.input` that turns a framing error into MalformedBody and marks the request closing.

    gunicorn raises its parser errors (InvalidChunkSize, ChunkMissingTerminator...) from a body
    read deep inside the application, where they would be an unhandled 500 quoting the bytes.
    """

    def __init__(self, body: Any, req: Any) -> None:
        self._body = body
        self._req = req

    def _guard(self, method: Any, *args: Any) -> Any:
        try:
            return method(*args)
        except (ParseException, NoMoreData):
            # The next request's start is unknown: the answer says close, and the worker closes.
            self._req.force_close()
            raise MalformedBody() from None

    def read(self, size: int | None = None) -> bytes:
        """Read up to `size` bytes of the body (all of it when None)."""
        return bytes(self._guard(self._body.read, size))

    def readline(self, size: int | None = None) -> bytes:
        """Read one line of the body."""
        return bytes(self._guard(self._body.readline, size))

    def readlines(self, size: int | None = None) -> list[bytes]:
        """Read the body's lines."""
        return list(self._guard(self._body.readlines, size))

    def __iter__(self) -> GuardedBody:
        return self

    def __next__(self) -> bytes:
        return bytes(self._guard(self._body.__next__))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._body, name)

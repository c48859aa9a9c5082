"""A test client that drives the production WSGI callable, as gunicorn does.

Django's test client runs every request through the full middleware stack; production sends
proxied requests through `GatewayApplication`'s lean handler. This client builds the same WSGI
environ as Django's (so `get`, `post`, `generic` and `HTTP_*` keywords work alike), calls the
WSGI application and gives back what a server would send: the status, the header list and the
body iterable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import RequestFactory

from gateway_project.dispatch import GatewayApplication


@contextmanager
def _connections_kept() -> Iterator[None]:
    """Keep the test's database connection: a real server closes it around each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


class WSGIResponse:
    """What the WSGI application sent: status, headers (repeats kept) and body."""

    def __init__(self, status: str, headers: list[tuple[str, str]], body: Iterable[bytes]):
        self.status_code = int(status.split(" ", 1)[0])
        self.reason_phrase = status.split(" ", 1)[1] if " " in status else ""
        self.header_list = headers
        self.headers = {name.lower(): value for name, value in reversed(headers)}
        # A Django response marks a body it streams; a server sees that as a chunked iterable.
        self.streaming = bool(getattr(body, "streaming", False))
        self._body = body
        self._content: bytes | None = None
        if not self.streaming:
            self._content = self._drain()

    def _drain(self) -> bytes:
        return b"".join(self._chunks())

    def _chunks(self) -> Iterator[bytes]:
        with _connections_kept():
            try:
                yield from self._body
            finally:
                close = getattr(self._body, "close", None)
                if close is not None:
                    close()  # as a server does: it ends the access log line and spans

    @property
    def streaming_content(self) -> Iterator[bytes]:
        """The body's chunks as the server would write them."""
        if self._content is not None:
            return iter([self._content])
        return self._chunks()

    @property
    def content(self) -> bytes:
        """The whole body."""
        if self._content is None:
            self._content = self._drain()
        return self._content

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.content)

    def __getitem__(self, name: str) -> str:
        return self.headers[name.lower()]

    def __contains__(self, name: str) -> bool:
        return name.lower() in self.headers

    def has_header(self, name: str) -> bool:
        """Whether the answer carries the header."""
        return name in self

    def get(self, name: str, default: str | None = None) -> str | None:
        """A header's value, or `default`."""
        return self.headers.get(name.lower(), default)

    def values(self, name: str) -> list[str]:
        """Every value of a header that may repeat (Set-Cookie)."""
        return [value for key, value in self.header_list if key.lower() == name.lower()]


class GatewayWSGIClient(RequestFactory):
    """Sends requests through `GatewayApplication`: the lean proxy handler for proxied paths."""

    def __init__(self, **defaults: Any) -> None:
        super().__init__(**defaults)
        self.application = GatewayApplication(WSGIHandler())

    def request(self, **request: Any) -> WSGIResponse:  # type: ignore[override] # a server's view, not a WSGIRequest
        """Serve one request through the WSGI callable."""
        environ = super().request(**request).environ  # the environ Django's test client builds
        sent: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> None:
            sent["status"], sent["headers"] = status, headers

        with _connections_kept():
            body = self.application(environ, start_response)
        return WSGIResponse(sent["status"], sent["headers"], body)

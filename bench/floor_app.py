"""The `server_floor` scenario's application: a plain WSGI function answering a fixed 200.

No Django, no upstream: served by gunicorn with the gateway's own settings, its CPU per request
is what the server itself costs, the floor under every proxied request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

_BODY = b'{"status": "ok"}'
_HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(_BODY)))]


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer every request with the same small JSON body."""
    start_response("200 OK", _HEADERS)
    return [_BODY]

"""Two Django handlers behind one WSGI callable: the full stack for the gateway's own pages,
a lean one for proxied requests.

Proxied requests need no sessions, CSRF, messages, static files, login throttling or URL
resolution beyond the proxy view, yet Django's middleware and resolver cost about a fifth of a
proxied request's CPU. The lean handler keeps what every answer needs: the request id, the host
check (ALLOWED_HOSTS), observability, and the problem+json error handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.module_loading import import_string

from gateway_project.net import is_reserved_path


class ProxyWSGIHandler(WSGIHandler):
    """Django's WSGI handler with GATEWAY_PROXY_MIDDLEWARE and the proxy-only URLconf."""

    def load_middleware(self, is_async: bool = False) -> None:
        """Chain the lean middleware list (plain `__call__` middleware only)."""
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response)  # type: ignore[attr-defined]
        for path in reversed(settings.GATEWAY_PROXY_MIDDLEWARE):
            handler = convert_exception_to_response(import_string(path)(handler))
        self._middleware_chain = handler

    def get_response(self, request: HttpRequest) -> HttpResponseBase:
        """Resolve against the proxy's URLconf only."""
        request.urlconf = settings.GATEWAY_PROXY_URLCONF
        return super().get_response(request)


class GatewayApplication:
    """The WSGI callable: routes by path to the full or the lean Django handler."""

    def __init__(self, full: Callable[..., Iterable[bytes]]) -> None:
        self.full = full
        self.proxy = ProxyWSGIHandler()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Serve one request."""
        handler = self.full if is_reserved_path(environ.get("PATH_INFO", "")) else self.proxy
        return handler(environ, start_response)

"""Two Django handlers behind one WSGI callable: the full stack for the gateway's own pages,
a lean one for proxied requests.

Proxied requests need no sessions, CSRF, messages, static files, login throttling or URL
resolution beyond the proxy view, yet Django's middleware and resolver cost about a fifth of a
proxied request's CPU. The lean handler keeps what every answer needs: the request id, the host
check (ALLOWED_HOSTS), observability, and the problem+json error handlers. It also skips, per
request, what only the full stack needs: the URL resolver (the proxy URLconf has one pattern
that matches every path, resolved once here) and the `request_started` signal; and it sets
the thread's script prefix only when it changes.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import (
    LimitedStream,
    WSGIHandler,
    WSGIRequest,
    get_path_info,
    get_script_name,
)
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import base as urls_base
from django.urls import get_resolver, set_script_prefix
from django.utils.log import log_response
from django.utils.module_loading import import_string

from gateway_project import request_end
from gateway_project.net import is_reserved_path


def _script_prefix_variable(local: Any) -> contextvars.ContextVar[Any] | None:
    """The context variable behind Django's per-thread script prefixes (asgiref's Local keeps a
    thread's values in one), or None when asgiref stores them some other way."""
    variable = getattr(getattr(local, "_storage", None), "_data", None)
    return variable if type(variable) is contextvars.ContextVar else None


# Django's Local of script prefixes, and its context variable (found once, at import).
_PREFIXES = getattr(urls_base, "_prefixes", None)
_SCRIPT_PREFIX = _script_prefix_variable(_PREFIXES)


def set_script_prefix_unless_set(script_name: str) -> None:
    """Django's `set_script_prefix(script_name)`, skipped when this thread has that prefix.

    Django sets it on every request, through asgiref's Local: a process-wide lock, a copy of the
    thread's values, a new storage object and a context variable set. A thread serves the same
    prefix request after request, so the value is almost always there already; skipping the set
    then saves 0.7% of a proxied request's instructions (bench/instructions.py). The value is
    read from the Local's storage directly, as asgiref's own read does (the thread's values,
    tagged with the thread that set them); anything unexpected sets it.
    """
    wanted = script_name if script_name.endswith("/") else f"{script_name}/"
    held = None
    # The variable found at import, while that Local is still Django's (a test may swap it).
    if _SCRIPT_PREFIX is not None and getattr(urls_base, "_prefixes", None) is _PREFIXES:
        held = _SCRIPT_PREFIX.get(None)
    if (
        getattr(held, "thread_id", None) != threading.get_ident()
        or type(values := getattr(held, "data", None)) is not dict
        or values.get("value") != wanted
    ):
        set_script_prefix(script_name)


class ProxyRequest(WSGIRequest):
    """Django's WSGIRequest, made with the script name its handler has already found.

    The same attributes as WSGIRequest(environ) (tests/test_dispatch.py compares them), with
    less work for the common proxied request: an ASCII path needs none of Django's re-encoding,
    and a request without Content-Type or Content-Length none of their parsing.
    """

    def __init__(self, environ: dict[str, Any], script_name: str) -> None:
        path_info = environ.get("PATH_INFO", "/")
        if not (isinstance(path_info, str) and path_info.isascii()):
            path_info = get_path_info(environ)  # Django's way: may re-percent broken UTF-8
        path_info = path_info or "/"
        self.environ = self.META = environ
        self.path_info = path_info
        # Only the first slash goes: http://h/x and http://h//x differ (RFC 3986), as in Django.
        self.path = f"{script_name.rstrip('/')}/{path_info.replace('/', '', 1)}"
        environ["PATH_INFO"] = path_info
        environ["SCRIPT_NAME"] = script_name
        self.method = environ["REQUEST_METHOD"].upper()
        if "CONTENT_TYPE" in environ:
            self._set_content_type_params(environ)  # type: ignore[attr-defined]
        else:
            self.content_type, self.content_params = "", {}
        content_length = 0
        if environ.get("CONTENT_LENGTH") is not None:
            try:
                content_length = int(environ["CONTENT_LENGTH"])
            except (ValueError, TypeError):
                content_length = 0
        self._stream = LimitedStream(environ["wsgi.input"], content_length)  # type: ignore[assignment]
        self._read_started = False
        self.resolver_match = None


class ProxyWSGIHandler(WSGIHandler):
    """Django's WSGI handler with GATEWAY_PROXY_MIDDLEWARE and the proxy view called directly."""

    def __init__(self) -> None:
        super().__init__()
        # The proxy URLconf's one pattern matches every path: resolve it once, not per request.
        # `request.resolver_match` still names the view ("proxy") for the metrics' route label.
        self._match = get_resolver(settings.GATEWAY_PROXY_URLCONF).resolve("/")
        self._view = self.make_view_atomic(self._match.func)
        # Its requests set no URLconf, and the gateway's caches usually close nothing per
        # request: their ends skip reset_urlconf (and close_caches while that holds).
        request_end.skip_for(type(self))

    def load_middleware(self, is_async: bool = False) -> None:
        """Chain the lean middleware list (plain `__call__` middleware only)."""
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response)
        for path in reversed(settings.GATEWAY_PROXY_MIDDLEWARE):
            handler = convert_exception_to_response(import_string(path)(handler))
        self._middleware_chain = handler

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Django's `WSGIHandler.__call__` without the `request_started` signal.

        Its receivers close stale database connections and clear the DEBUG query log; both also
        run on `request_finished`, which every response's close() still sends, so on a thread
        that only serves requests the start-of-request pass finds nothing the last one left
        (a connection past its age is closed at the end of the request that finds it so, and
        the connection health check runs on its first use in every request). Of
        `request_finished`'s receivers, the two with nothing to do for a proxied request are
        skipped (gateway_project/request_end.py).
        """
        script_name = get_script_name(environ)
        set_script_prefix_unless_set(script_name)
        request = ProxyRequest(environ, script_name)
        response = self.get_response(request)
        response._handler_class = self.__class__  # type: ignore[attr-defined]
        status = f"{response.status_code} {response.reason_phrase}"
        headers = [
            *response.items(),
            *(("Set-Cookie", c.output(header="")) for c in response.cookies.values()),
        ]
        start_response(status, headers)
        return response

    def get_response(self, request: HttpRequest) -> HttpResponseBase:
        """The lean middleware chain; no per-request URLconf (nothing is resolved per request)."""
        response: Any = self._middleware_chain(request)  # a plain (not async) chain
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            log_response(
                "%s: %s", response.reason_phrase, request.path, response=response, request=request
            )
        return response

    def _get_response(self, request: HttpRequest) -> HttpResponseBase:
        """Call the proxy view (no view or template-response middleware on this stack)."""
        request.resolver_match = self._match
        response = self._view(request)
        self.check_response(response, self._view)
        return response


class GatewayApplication:
    """The WSGI callable: routes by path to the full or the lean Django handler."""

    def __init__(self, full: Callable[..., Iterable[bytes]]) -> None:
        self.full = full
        self.proxy = ProxyWSGIHandler()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Serve one request."""
        handler = self.full if is_reserved_path(environ.get("PATH_INFO", "")) else self.proxy
        return handler(environ, start_response)

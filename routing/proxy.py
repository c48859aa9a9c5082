"""Turning a client's request into an upstream request, and the answer back."""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.cookie import SimpleCookie
from django.http.response import HttpResponseBase, ResponseHeaders
from urllib3.exceptions import HTTPError, ReadTimeoutError

from gateway_project.errors import (
    BadRequest,
    PayloadTooLarge,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway_project.response_headers import stored_headers
from routing.forwarding import (
    forwarded_for,
    request_headers_from_meta,
    response_headers,
    traceparent_for,
)
from routing.loops import via_with_ours
from routing.paths import BadPath, normalize_path
from routing.policies.headers import apply_to_request as apply_header_rules
from routing.table import CompiledRoute
from routing.upstream import UpstreamAnswer, UpstreamRequest, upstream_client

if TYPE_CHECKING:
    from routing.pipeline import RequestContext

logger = logging.getLogger("gateway.proxy")

_CHUNK = 64 * 1024
# Answers up to this size are read whole and the connection freed at once; larger ones stream.
_BUFFERED_RESPONSE_LIMIT = 256 * 1024


def raw_path(raw_uri: str | None, path_info: str) -> str:
    """The request path as the client sent it (percent-escapes intact), without the query.

    `raw_uri` is the server's RAW_URI / REQUEST_URI; without one, PATH_INFO (decoded) is
    re-encoded so escapes stay escaped.
    """
    if raw_uri:
        if "://" in raw_uri.split("?", 1)[0]:  # absolute-form request target
            raw_uri = "/" + raw_uri.split("://", 1)[1].partition("/")[2]
        return str(raw_uri).split("?", 1)[0]
    return path_info.encode("utf-8").decode("latin-1").replace("%", "%25")


def normalized_path(raw: str) -> str:
    """The normalized form of a raw request path; BadRequest for a hostile or malformed one."""
    try:
        return normalize_path(raw)
    except BadPath as error:
        raise BadRequest(f"Bad path: {error.reason}") from None


class _LimitedReader:
    """Reads exactly `length` bytes from a WSGI input stream, in chunks."""

    def __init__(self, stream: Any, length: int) -> None:
        self._stream = stream
        self._left = length

    def read(self, size: int = -1) -> bytes:
        """Read at most `size` bytes (all that is left when negative)."""
        if self._left <= 0:
            return b""
        size = self._left if size < 0 else min(size, self._left)
        data = self._stream.read(size)
        self._left -= len(data)
        return bytes(data)


def request_body(request: HttpRequest) -> tuple[IO[bytes] | bytes | None, int, bool]:
    """The body to forward as (body, length, replayable); 413 before any upstream contact."""
    stream = request.META["wsgi.input"]
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        # Unknown length: spool (to disk past 1 MiB) up to the limit, then forward it.
        spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115
        size = 0
        limit = settings.GATEWAY_MAX_BODY_SIZE
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                spool.close()
                raise PayloadTooLarge()
            spool.write(chunk)
        spool.seek(0)
        return spool, size, True
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadRequest("Content-Length is not a number.") from None
    if length < 0:
        raise BadRequest("Content-Length is negative.")
    if length == 0:  # most requests: no setting to read
        return None, 0, True
    if length > settings.GATEWAY_MAX_BODY_SIZE:
        raise PayloadTooLarge()
    if length <= _CHUNK:
        return stream.read(length), length, True
    return _LimitedReader(stream, length), length, False  # type: ignore[return-value]


_BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


def upstream_request(
    request: HttpRequest,
    context: RequestContext,
    route: CompiledRoute,
    *,
    before_body: Callable[[], None] | None = None,
) -> UpstreamRequest:
    """Build the upstream request: path, query, end-to-end headers and the gateway's own.

    `before_body` runs once the headers are built (or failed to build), before the client's
    body is read: the pipeline's pending limit verdict, whose refusal takes precedence. An
    interrupt (a BaseException) is not replaced by it.
    """
    try:
        headers = _upstream_headers(request, context, route)
        path = upstream_path(route, str(context.path))
    except Exception:
        if before_body is not None:
            before_body()
        raise
    if before_body is not None:
        before_body()
    body, length, replayable = request_body(request)
    if body is not None or request.method not in _BODYLESS_METHODS:
        headers["content-length"] = str(length)
    query = context.query
    return UpstreamRequest(
        method=str(request.method),
        path=f"{path}?{query}" if query else path,
        headers=headers,
        body=body,
        replayable=replayable,
    )


def _upstream_headers(
    request: HttpRequest, context: RequestContext, route: CompiledRoute
) -> dict[str, str]:
    """The client's end-to-end headers and the gateway's own (all but Content-Length)."""
    meta = request.META
    headers = dict(request_headers_from_meta(meta, hide_credentials=route.hide_credentials))
    remote = str(meta.get("REMOTE_ADDR", ""))
    headers["x-forwarded-for"] = forwarded_for(remote, meta.get("HTTP_X_FORWARDED_FOR"))
    headers["x-forwarded-proto"] = request.scheme or "http"
    headers["x-forwarded-host"] = str(meta.get("HTTP_HOST", ""))
    headers["x-request-id"] = context.request_id
    headers["via"] = via_with_ours(meta.get("HTTP_VIA"))
    trace = context.trace  # the observability middleware's, when it ran
    headers["traceparent"] = (
        trace.traceparent if trace is not None else traceparent_for(meta.get("HTTP_TRACEPARENT"))
    )
    principal = context.principal
    if principal is not None:
        headers["x-consumer-id"] = principal.id
        headers["x-consumer-username"] = principal.username
        headers["x-consumer-roles"] = ",".join(sorted(principal.roles))
        headers["x-consumer-permissions"] = ",".join(sorted(principal.permissions))
    if context.request_header_rules is not None:  # the request_headers step's (protected
        apply_header_rules(context.request_header_rules, headers)  # names refused at validation)
    return headers


class _RepeatedHeadersMixin:
    """Lets a response carry headers Django's header dict cannot repeat (Set-Cookie)."""

    # A tuple: shared by every response without repeated headers, so never changed in place.
    extra_headers: Sequence[tuple[str, str]] = ()
    # The upstream decides its own framing and security headers; Django's middleware must not.
    gateway_proxied = True
    xframe_options_exempt = True

    def items(self) -> list[tuple[str, str]]:
        """Headers as the WSGI handler sends them, repeated ones included."""
        return [*stored_headers(self), *self.extra_headers]  # type: ignore[arg-type]


class BufferedProxiedResponse(_RepeatedHeadersMixin, HttpResponse):
    """A small upstream answer, read whole."""

    @classmethod
    def relayed(
        cls, content: bytes, status: int, store: dict[str, tuple[str, str]]
    ) -> BufferedProxiedResponse:
        """The response HttpResponse(content, status=status) would be, its header store
        `store`, set up directly.

        Django's constructor checks and converts what the upstream's answer already is (a valid
        status, bytes, header names and values the strict head parser let through) and builds
        a header store that is then replaced: about 2.5% of a proxied request's instructions
        (bench/instructions.py). tests/routing/test_proxy.py compares the two, attribute by
        attribute, so a Django release that adds one fails there.
        """
        response: Any = cls.__new__(cls)  # Any: Django's private attributes are set below
        headers = ResponseHeaders.__new__(ResponseHeaders)
        headers._store = store
        response.headers = headers
        response._charset = None
        response._resource_closers = []
        response._handler_class = None
        response.cookies = SimpleCookie()
        response.closed = False
        response.status_code = status
        response._reason_phrase = None
        response._container = [content]
        return response


class StreamedProxiedResponse(_RepeatedHeadersMixin, StreamingHttpResponse):
    """A large or unknown-length upstream answer, streamed through in chunks."""

    body_progress: BodyProgress | None = None


def _upstream_failure(upstream: UpstreamAnswer, error: Exception) -> Exception:
    """The gateway error for a body that failed before the client's head went out."""
    upstream.close()
    upstream.release_conn()
    if isinstance(error, ReadTimeoutError):
        return UpstreamTimeout()
    logger.info("upstream body broke off before the answer went out: %s", type(error).__name__)
    return UpstreamUnavailable()


def _read_whole(upstream: UpstreamAnswer) -> bytes:
    """A small body, read before the client's head goes out: a failure is still a 502/504."""
    try:
        content = bytes(upstream.read(decode_content=False))
    except (HTTPError, OSError) as error:
        raise _upstream_failure(upstream, error) from None
    upstream.release_conn()
    return content


class BodyProgress:
    """Whether a streamed body reached its end: a later break-off is not raised (see _rest),
    so whoever keeps the body (the cache) asks here."""

    complete: bool = False


def _stream(
    upstream: UpstreamAnswer, client_socket: Any, progress: BodyProgress
) -> Iterator[bytes]:
    """The upstream's body in chunks, the first one read before the client's answer starts.

    The server sends the client's head with the first chunk, so a failure on the first read
    is still a 502/504; a failure later closes the client's connection (see _rest).
    """
    chunks = upstream.stream(_CHUNK, decode_content=False)
    try:
        first = next(chunks, None)
    except (HTTPError, OSError) as error:
        raise _upstream_failure(upstream, error) from None
    return _rest(upstream, chunks, first, client_socket, progress)


def _rest(
    upstream: UpstreamAnswer,
    chunks: Iterator[bytes],
    first: bytes | None,
    client_socket: Any,
    progress: BodyProgress,
) -> Iterator[bytes]:
    finished = False
    try:
        if first is not None:
            yield first
            yield from chunks
        finished = progress.complete = True
    except (HTTPError, OSError) as error:
        # Too late for an error status: the head went out. Shut the client's connection so
        # the short body cannot be taken as complete (nor a closing chunk be written after
        # it); the server's next write then fails quietly with EPIPE.
        logger.warning(
            "upstream body broke off (%s); closing the client connection", type(error).__name__
        )
        if client_socket is None:
            raise
        with contextlib.suppress(OSError):  # the client may have gone already
            client_socket.shutdown(socket.SHUT_RDWR)
    finally:
        if not finished:
            upstream.close()
        upstream.release_conn()


def _has_small_body(upstream: UpstreamAnswer, method: str) -> bool:
    if method == "HEAD" or upstream.status in (204, 304):
        return True
    length = upstream.headers.get("content-length")
    return length is not None and length.isdigit() and int(length) <= _BUFFERED_RESPONSE_LIMIT


_PLACEHOLDER_HEADERS = MappingProxyType({"Content-Type": "application/octet-stream"})


def client_response(
    upstream: UpstreamAnswer, *, method: str, client_socket: Any = None
) -> HttpResponseBase:
    """The client's answer from the upstream's: headers filtered, body streamed when large.

    `client_socket` (gunicorn's, from the WSGI environ) is shut when a streamed body breaks off.
    """
    headers, cookies = response_headers(upstream.headers.items())
    # The upstream's headers are the response's as they are: the strict head parser let
    # through only tokens for names and no CR, LF or NUL in values, latin-1 text, which is all
    # Django's per-header checks and conversions would ensure.
    via = headers.get("via")
    headers["via"] = ("Via", via_with_ours(via[1] if via else None))
    response: BufferedProxiedResponse | StreamedProxiedResponse
    if _has_small_body(upstream, method):
        response = BufferedProxiedResponse.relayed(_read_whole(upstream), upstream.status, headers)
    else:
        progress = BodyProgress()
        # The placeholder spares Django looking up a Content-Type and a charset that are not
        # there (two raised and caught KeyErrors); the store is replaced right after.
        response = StreamedProxiedResponse(
            _stream(upstream, client_socket, progress),
            status=upstream.status,
            headers=_PLACEHOLDER_HEADERS,
        )
        response.body_progress = progress
        response.headers._store = headers
    if cookies:
        response.extra_headers = [("Set-Cookie", cookie) for cookie in cookies]
    return response


def upstream_path(route: CompiledRoute, path: str) -> str:
    """The path the upstream receives for the normalized `path` (prefix stripped if asked)."""
    return route.pattern.upstream_path(path, strip_prefix=route.strip_prefix)


def forward(
    request: HttpRequest,
    context: RequestContext,
    *,
    before_body: Callable[[], None] | None = None,
) -> HttpResponseBase:
    """Send the request upstream and turn the answer into the client's response.

    `before_body`: see upstream_request.
    """
    route = context.route
    if route is None:
        raise RuntimeError("forward before match")
    outgoing = upstream_request(request, context, route, before_body=before_body)
    context.request_bytes = int(outgoing.headers.get("content-length", 0))
    started = time.perf_counter()
    try:
        result = upstream_client().send(route, outgoing)
    finally:
        context.upstream_seconds = time.perf_counter() - started
    context.upstream_target = result.target.url
    context.attempts = result.attempts
    return client_response(
        result.response, method=outgoing.method, client_socket=request.META.get("gunicorn.socket")
    )

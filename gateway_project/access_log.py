"""The access log: one JSON line per request on the `gateway.access` logger (stdout).

Under gunicorn each worker starts a LineWriter (gunicorn.conf.py): the request thread only
hands a record to a bounded buffer, and a background thread encodes (orjson) and emits the
lines a few times a second. When the buffer is full the line is dropped and counted
(gateway_access_log_dropped_total), never waited for. Elsewhere (tests, management commands)
lines are written at once, on the caller's thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from django.http import HttpRequest, HttpResponseBase

from gateway_project.net import request_client_address
from gateway_project.outcome import Outcome

logger = logging.getLogger("gateway.access")

REDACTED = "[REDACTED]"
# Headers that carry credentials; their values never reach a log line.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
# Query parameters that commonly carry credentials (OAuth, API keys, signed URLs).
SECRET_QUERY_PARAMS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "api_key",
        "apikey",
        "key",
        "client_secret",
        "code",
        "password",
        "secret",
        "signature",
        "sig",
        "jwt",
    }
)


def redacted_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers by lower-case name, credentials replaced (repeated names joined by ', ')."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        lowered = name.lower()
        shown = REDACTED if lowered in SECRET_HEADERS else value
        headers[lowered] = f"{headers[lowered]}, {shown}" if lowered in headers else shown
    return headers


def request_header_pairs(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The client's request headers from a WSGI environ."""
    pairs = []
    for key, value in meta.items():
        if key.startswith("HTTP_"):
            pairs.append((key[5:].replace("_", "-").lower(), str(value)))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            pairs.append((key.replace("_", "-").lower(), str(value)))
    return pairs


def redacted_query(query: str) -> str:
    """The query string with credential-bearing parameters' values replaced."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    shown = [(name, REDACTED if name.lower() in SECRET_QUERY_PARAMS else v) for name, v in pairs]
    return urlencode(shown)


_stamp: list[Any] = [0, ""]


def _timestamp() -> str:
    """UTC time to the millisecond; the seconds part is formatted once per second."""
    now = time.time()
    second = int(now)
    if _stamp[0] != second:
        _stamp[0], _stamp[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_stamp[1]}.{int((now - second) * 1000):03d}Z"


def record_for(
    request: HttpRequest,
    response: HttpResponseBase,
    outcome: Outcome,
    *,
    trace_id: str | None,
    with_headers: bool,
) -> dict[str, Any]:
    """The access log fields of one request (headers and query only `with_headers`)."""
    upstream_seconds = outcome.upstream_seconds
    record: dict[str, Any] = {
        "request_id": getattr(request, "request_id", None),
        "trace_id": trace_id,
        "method": outcome.method,
        "path": outcome.path,
        "route": outcome.route,
        "service": outcome.service,
        "consumer": outcome.consumer_name,
        "consumer_id": outcome.consumer_id,
        "client": request_client_address(request.META),
        "status": outcome.status,
        "bytes_in": outcome.bytes_in,
        "bytes_out": outcome.bytes_out,
        "total_ms": round(outcome.total_seconds * 1000, 2),
        "upstream_ms": round(upstream_seconds * 1000, 2) if upstream_seconds is not None else None,
        "upstream": outcome.upstream_target,
        "retries": max(outcome.attempts - 1, 0),
        "limit": outcome.limit_verdict,
        "error": outcome.error_code,
    }
    if with_headers:
        record["query"] = redacted_query(request.META.get("QUERY_STRING", ""))
        record["request_headers"] = redacted_headers(request_header_pairs(request.META))
        record["response_headers"] = redacted_headers(response.items())
    return record


def enabled() -> bool:
    """Whether access log lines are written at the current LOG_LEVEL."""
    return logger.isEnabledFor(logging.INFO)


def encode(stamp: str, record: dict[str, Any]) -> str:
    """One compact JSON line, the UTC timestamp first (values orjson cannot encode as text)."""
    return orjson.dumps({"ts": stamp, **record}, default=str).decode()


class LineWriter:
    """Emits access log lines on a background thread, from a bounded buffer that never blocks.

    The request thread only appends to a deque (atomic under the GIL, no lock, no wake-up):
    signalling the writer for every line would hand the GIL over once per request. The writer
    wakes every `interval` seconds and writes what has accumulated as one record (a handler
    other than stdout receives several lines, newline-separated, in one message).
    """

    def __init__(self, capacity: int = 10_000, interval: float = 0.05) -> None:
        self._lines: deque[tuple[str, dict[str, Any]]] = deque()
        self._capacity = capacity
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)

    def start(self) -> None:
        """Start the writing thread."""
        self._thread.start()

    def submit(self, stamp: str, record: dict[str, Any]) -> None:
        """Buffer one line; when the buffer is full, drop it and count the drop."""
        if len(self._lines) >= self._capacity:
            from gateway_project import metrics

            metrics.ACCESS_LOG_DROPPED.inc()
            return
        self._lines.append((stamp, record))

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is buffered, then end the thread (waits at most `timeout` seconds)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        else:
            self._drain()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        """Write what has accumulated as one log record: one handler call and one write per
        drain instead of per line (the lines stay one JSON object each)."""
        take = self._lines.popleft
        lines = []
        for _ in range(len(self._lines)):
            try:
                lines.append(encode(*take()))
            except Exception:  # a value orjson cannot write (an integer past 64 bits): skipped
                _count_failure()
        if lines:
            _emit("\n".join(lines))


def _emit(lines: str) -> None:
    """Write lines; a failing handler is counted, never raised into a request."""
    try:
        logger.info(lines)
    except Exception:
        _count_failure()


def _count_failure() -> None:
    from gateway_project import metrics

    metrics.count_failure("access_log")


_writer: LineWriter | None = None


def start_writer(capacity: int = 10_000) -> LineWriter:
    """Write this process's lines from a background thread from now on (a gunicorn worker)."""
    global _writer
    _writer = LineWriter(capacity)
    _writer.start()
    return _writer


def stop_writer() -> None:
    """Write the queued lines and go back to writing on the caller's thread."""
    global _writer
    writer, _writer = _writer, None
    if writer is not None:
        writer.stop()


def write(record: dict[str, Any]) -> None:
    """Emit one access log line (compact JSON, UTC timestamp first)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    writer = _writer
    if writer is not None:
        writer.submit(_timestamp(), record)
    else:
        logger.info(encode(_timestamp(), record))

"""The access log: one JSON line per request on the `gateway.access` logger (stdout)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

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


# One encoder for every line: json.dumps with options would build a new one per call.
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
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


def write(record: dict[str, Any]) -> None:
    """Emit one access log line (compact JSON, UTC timestamp first)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    logger.info(_encode({"ts": _timestamp(), **record}))

"""What one finished request amounts to, gathered once for the log, metrics and spans."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponseBase

from gateway_project import extensions, metrics


def _content_length(meta: Any) -> int:
    try:
        return int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def gateway_produced(request: HttpRequest, response: HttpResponseBase) -> bool:
    """Whether the gateway wrote this answer itself (not relayed it from an upstream)."""
    if getattr(request, "gateway_error", None) is not None:
        return True
    return not extensions.is_relayed_response(response)


@dataclass(slots=True)
class Outcome:
    """One request's facts: route labels, status, sizes, timings, consumer, verdict, error."""

    method: str
    path: str
    route: str
    service: str | None
    status: int
    bytes_in: int
    bytes_out: int
    total_seconds: float
    upstream_seconds: float | None
    upstream_target: str | None
    attempts: int
    consumer_name: str | None
    consumer_id: str | None
    limit_verdict: str | None
    error_code: str | None

    @property
    def rejected(self) -> bool:
        """Refused by a rate limit or quota."""
        return self.status == 429


def outcome_of(
    request: HttpRequest, response: HttpResponseBase, *, total_seconds: float, sent: int
) -> Outcome:
    """Gather the facts of a finished request from the request, its context and answer."""
    status = response.status_code
    context = extensions.request_context(request)
    if context is not None and context.route is not None:
        route, service_label = metrics.route_labels(context.route)
        service: str | None = service_label
        path = str(context.path)
        bytes_in = context.request_bytes or _content_length(request.META)
    else:
        # The gateway's own pages, and proxied requests refused before a route matched.
        match = request.resolver_match
        route = metrics.UNMATCHED if match and match.url_name == "proxy" else metrics.INTERNAL
        service = None
        path = request.path
        bytes_in = _content_length(request.META)
    error_code = None
    if status >= 500 and gateway_produced(request, response):
        error_code = getattr(request, "gateway_error", None) or f"http_{status}"
    consumer = context.principal if context is not None else None
    return Outcome(
        method=str(request.method),
        path=path,
        route=route,
        service=service,
        status=status,
        bytes_in=bytes_in,
        bytes_out=sent,
        total_seconds=total_seconds,
        upstream_seconds=context.upstream_seconds if context is not None else None,
        upstream_target=context.upstream_target if context is not None else None,
        attempts=context.attempts if context is not None else 0,
        consumer_name=(consumer.username or consumer.id) if consumer is not None else None,
        consumer_id=consumer.id if consumer is not None else None,
        limit_verdict=context.limit_verdict if context is not None else None,
        error_code=error_code,
    )

"""The observability middleware: access log, metrics, dashboard aggregates and trace spans.

Everything here runs after the view has answered (for a streamed answer, after its last
byte), is wrapped so it can never fail a request, and counts its own failures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from gateway_project import access_log, error_tracking, metrics, tracing, traffic
from routing.forwarding import client_address

logger = logging.getLogger("gateway.observability")


def _content_length(meta: dict[str, Any]) -> int:
    try:
        return int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _table_version() -> int:
    from routing.table import route_tables

    return route_tables.get().version


def _gateway_produced(request: HttpRequest, response: HttpResponseBase) -> bool:
    """Whether the gateway wrote this answer itself (not relayed it from an upstream)."""
    if getattr(request, "gateway_error", None) is not None:
        return True
    from routing.proxy import BufferedProxiedResponse, StreamedProxiedResponse

    return not isinstance(response, BufferedProxiedResponse | StreamedProxiedResponse)


class ObservabilityMiddleware:
    """Times every request and records it once its answer is complete."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        """Start the clock and the trace, serve, then record (after streaming, if any)."""
        started = time.perf_counter()
        try:
            request.trace = tracing.begin(request.META, str(request.method))  # type: ignore[attr-defined]
            metrics.IN_FLIGHT.inc()
            request.observed_in_flight = True  # type: ignore[attr-defined]
        except Exception:
            logger.warning("observability start failed", exc_info=True)
            metrics.count_failure("start")
        response = self.get_response(request)
        try:
            if response.streaming:
                response.streaming_content = self._counted(  # type: ignore[attr-defined]
                    response.streaming_content,  # type: ignore[attr-defined]
                    request,
                    response,
                    started,
                )
            else:
                self.finish(request, response, started, len(response.content))  # type: ignore[attr-defined]
        except Exception:
            logger.warning("observability finish failed", exc_info=True)
            metrics.count_failure("finish")
        return response

    def _counted(
        self,
        content: Iterator[bytes],
        request: HttpRequest,
        response: HttpResponseBase,
        started: float,
    ) -> Iterator[bytes]:
        sent = 0
        try:
            for chunk in content:
                sent += len(chunk)
                yield chunk
        finally:
            try:
                self.finish(request, response, started, sent)
            except Exception:
                logger.warning("observability finish failed", exc_info=True)
                metrics.count_failure("finish")

    def finish(
        self, request: HttpRequest, response: HttpResponseBase, started: float, sent: int
    ) -> None:
        """Record one completed request: metrics, dashboard aggregates, log line, spans."""
        total = time.perf_counter() - started
        if getattr(request, "observed_in_flight", False):
            request.observed_in_flight = False  # type: ignore[attr-defined]
            metrics.IN_FLIGHT.dec()
        status = response.status_code
        method = str(request.method)
        context = getattr(request, "gateway", None)
        if context is not None:
            route, service_label = metrics.route_labels(context.route)
            service: str | None = service_label
            path = context.path
            bytes_in = context.request_bytes or _content_length(request.META)
        else:
            match = request.resolver_match
            route = metrics.UNMATCHED if match and match.url_name == "proxy" else metrics.INTERNAL
            service = None
            path = request.path
            bytes_in = _content_length(request.META)
        consumer = getattr(context, "consumer", None)
        consumer_name = (consumer.username or consumer.id) if consumer is not None else None
        verdict = getattr(context, "limit_verdict", None)
        upstream_seconds = getattr(context, "upstream_seconds", None)
        rejected = status == 429
        error_code = None
        if status >= 500 and _gateway_produced(request, response):
            error_code = getattr(request, "gateway_error", None) or f"http_{status}"
            self._track_error(request, status, error_code, route, service)

        self._metrics(route, service, method, status, total, upstream_seconds, rejected, verdict)
        if route != metrics.INTERNAL:
            self._traffic(route, status, rejected, total, consumer_name)
        trace = getattr(request, "trace", None)
        if access_log.enabled():
            self._log_request(
                request,
                response,
                {
                    "request_id": getattr(request, "request_id", None),
                    "trace_id": trace.trace_id if trace is not None else None,
                    "method": method,
                    "path": path,
                    "route": route,
                    "service": service,
                    "consumer": consumer_name,
                    "consumer_id": consumer.id if consumer is not None else None,
                    "client": client_address(
                        str(request.META.get("REMOTE_ADDR", "")),
                        request.META.get("HTTP_X_FORWARDED_FOR"),
                    ),
                    "status": status,
                    "bytes_in": bytes_in,
                    "bytes_out": sent,
                    "total_ms": round(total * 1000, 2),
                    "upstream_ms": (
                        round(upstream_seconds * 1000, 2) if upstream_seconds is not None else None
                    ),
                    "upstream": getattr(context, "upstream_target", None),
                    "retries": max(context.attempts - 1, 0) if context is not None else 0,
                    "limit": verdict,
                    "error": error_code,
                },
            )
        if trace is not None and trace.server_span is not None:
            self._end_spans(trace, context, route, service, method, path, status)

    @staticmethod
    def _track_error(
        request: HttpRequest, status: int, code: str, route: str, service: str | None
    ) -> None:
        try:
            error_tracking.report_server_error(
                request_id=getattr(request, "request_id", None),
                status=status,
                code=code,
                cause=getattr(request, "gateway_error_cause", None),
                route=route,
                service=service,
            )
        except Exception:
            metrics.count_failure("error_tracking")

    @staticmethod
    def _metrics(
        route: str,
        service: str | None,
        method: str,
        status: int,
        total: float,
        upstream_seconds: float | None,
        rejected: bool,
        verdict: str | None,
    ) -> None:
        try:
            series = metrics.route_series.get(route, service or metrics.NO_SERVICE)
            series.count(method, status)
            series.duration.observe(total)
            if upstream_seconds is not None:
                series.upstream_duration.observe(upstream_seconds)
            if rejected:
                metrics.count_limit_rejection(route, verdict)
            if service is not None:
                metrics.note_config_version(_table_version)
        except Exception:
            logger.warning("metrics failed", exc_info=True)
            metrics.count_failure("metrics")

    @staticmethod
    def _traffic(
        route: str, status: int, rejected: bool, total: float, consumer: str | None
    ) -> None:
        try:
            traffic.record(
                route=route,
                status=status,
                rejected=rejected,
                total_ms=total * 1000,
                consumer=consumer,
            )
        except Exception:
            metrics.count_failure("traffic")

    @staticmethod
    def _log_request(
        request: HttpRequest, response: HttpResponseBase, record: dict[str, Any]
    ) -> None:
        try:
            if settings.TRACE_REQUESTS:
                record["query"] = access_log.redacted_query(request.META.get("QUERY_STRING", ""))
                record["request_headers"] = access_log.redacted_headers(
                    access_log.request_header_pairs(request.META)
                )
                record["response_headers"] = access_log.redacted_headers(response.items())
            access_log.write(record)
        except Exception:
            metrics.count_failure("access_log")

    @staticmethod
    def _end_spans(
        trace: tracing.TraceContext,
        context: Any,
        route: str,
        service: str | None,
        method: str,
        path: str,
        status: int,
    ) -> None:
        try:
            if trace.forward_span is not None:
                tracing.end_span(
                    trace.forward_span,
                    {
                        "server.address": getattr(context, "upstream_target", None) or "",
                        "gateway.attempts": getattr(context, "attempts", 0),
                    },
                    error=status >= 500,
                )
            tracing.end_span(
                trace.server_span,
                {
                    "http.request.method": method,
                    "http.route": route,
                    "url.path": path,
                    "http.response.status_code": status,
                    "gateway.service": service or "",
                },
                error=status >= 500,
            )
        except Exception:
            metrics.count_failure("tracing")

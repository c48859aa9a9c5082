"""The observability middleware: access log, metrics, dashboard aggregates and trace spans.

Everything here runs after the view has answered (for a streamed answer, after its last
byte), is wrapped so it can never fail a request, and counts its own failures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponseBase

from gateway_project import access_log, error_tracking, extensions, metrics, tracing, traffic
from gateway_project.hot_settings import hot_setting
from gateway_project.outcome import Outcome, outcome_of

logger = logging.getLogger("gateway.observability")


def _served_config_version() -> int:
    # A routed request exists only once the routing app registered its table's version.
    return extensions.config_version() or 0


class ObservabilityMiddleware:
    """Times every request and records it once its answer is complete."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        """Start the clock and the trace, serve, then record (after streaming, if any)."""
        started = time.perf_counter()
        try:
            request.trace = tracing.begin(request.META, str(request.method))  # type: ignore[attr-defined]
            metrics.change_in_flight(+1)
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
            metrics.change_in_flight(-1)
        outcome = outcome_of(request, response, total_seconds=total, sent=sent)
        if outcome.error_code is not None:
            self._track_error(request, outcome)
        self._metrics(outcome)
        if outcome.route != metrics.INTERNAL:
            self._traffic(outcome)
        trace = getattr(request, "trace", None)
        if access_log.enabled():
            self._log_request(request, response, outcome, trace)
        if trace is not None and trace.server_span is not None:
            self._end_spans(trace, outcome)

    @staticmethod
    def _track_error(request: HttpRequest, outcome: Outcome) -> None:
        try:
            error_tracking.report_server_error(
                request_id=getattr(request, "request_id", None),
                status=outcome.status,
                code=str(outcome.error_code),
                cause=getattr(request, "gateway_error_cause", None),
                route=outcome.route,
                service=outcome.service,
            )
        except Exception:
            metrics.count_failure("error_tracking")

    @staticmethod
    def _metrics(outcome: Outcome) -> None:
        try:
            series = metrics.route_series.get(outcome.route, outcome.service or metrics.NO_SERVICE)
            series.count(outcome.method, outcome.status)
            series.duration.observe(outcome.total_seconds)
            if outcome.upstream_seconds is not None:
                series.upstream_duration.observe(outcome.upstream_seconds)
            if outcome.rejected:
                metrics.count_limit_rejection(outcome.route, outcome.limit_verdict)
            if outcome.service is not None:
                metrics.note_config_version(_served_config_version)
        except Exception:
            logger.warning("metrics failed", exc_info=True)
            metrics.count_failure("metrics")

    @staticmethod
    def _traffic(outcome: Outcome) -> None:
        try:
            traffic.record(
                route=outcome.route,
                status=outcome.status,
                rejected=outcome.rejected,
                total_ms=outcome.total_seconds * 1000,
                consumer=outcome.consumer_name,
            )
        except Exception:
            metrics.count_failure("traffic")

    @staticmethod
    def _log_request(
        request: HttpRequest, response: HttpResponseBase, outcome: Outcome, trace: Any
    ) -> None:
        try:
            access_log.write(
                access_log.record_for(
                    request,
                    response,
                    outcome,
                    trace_id=trace.trace_id if trace is not None else None,
                    with_headers=hot_setting("TRACE_REQUESTS"),
                )
            )
        except Exception:
            metrics.count_failure("access_log")

    @staticmethod
    def _end_spans(trace: tracing.TraceContext, outcome: Outcome) -> None:
        try:
            failed = outcome.status >= 500
            if trace.forward_span is not None:
                tracing.end_span(
                    trace.forward_span,
                    {
                        "server.address": outcome.upstream_target or "",
                        "gateway.attempts": outcome.attempts,
                    },
                    error=failed,
                )
            tracing.end_span(
                trace.server_span,
                {
                    "http.request.method": outcome.method,
                    "http.route": outcome.route,
                    "url.path": outcome.path,
                    "http.response.status_code": outcome.status,
                    "gateway.service": outcome.service or "",
                },
                error=failed,
            )
        except Exception:
            metrics.count_failure("tracing")

"""W3C trace context for every request, and OpenTelemetry spans when a collector is configured.

Without `OTEL_EXPORTER_OTLP_ENDPOINT` nothing of OpenTelemetry is imported: the gateway only
keeps (or starts) the client's trace id and names its own span id, which the upstream receives
as the parent in `traceparent`.  With it, each worker lazily builds a tracer provider whose
spans carry exactly those ids, and exports them in batches over OTLP/HTTP.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from django.conf import settings

from gateway_project.ids import random_hex

logger = logging.getLogger("gateway.tracing")

_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_SPAN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class TraceContext:
    """The request's trace: its id, the gateway's current span id, flags and OTel spans."""

    __slots__ = ("flags", "forward_span", "parent_span_id", "server_span", "span_id", "trace_id")

    def __init__(self, trace_id: str, parent_span_id: str | None, flags: str) -> None:
        self.trace_id = trace_id
        self.parent_span_id = parent_span_id
        self.flags = flags
        self.span_id = random_hex(8)
        self.server_span: Any = None
        self.forward_span: Any = None

    @property
    def traceparent(self) -> str:
        """The `traceparent` to send upstream: our span is the upstream's parent."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse_traceparent(value: str | None) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) from a valid version-00 traceparent, else None."""
    if not value or len(value) < 55:
        return None
    value = value.strip().lower()
    parts = value.split("-")
    if len(parts) < 4 or parts[0] == "ff" or len(parts[0]) != 2:
        return None
    version, trace_id, span_id, flags = parts[0], parts[1], parts[2], parts[3]
    if len(trace_id) != 32 or len(span_id) != 16 or len(flags) != 2:
        return None
    if version == "00" and len(parts) != 4:
        return None
    if not _HEX.issuperset(version + trace_id + span_id + flags):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, flags


class _Tracer:
    """This process's OpenTelemetry tracer, provider and propagator (imported lazily)."""

    def __init__(self, endpoint: str) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import (
            NonRecordingSpan,
            SpanContext,
            SpanKind,
            TraceFlags,
            set_span_in_context,
        )

        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.OTEL_SERVICE_NAME})
        )
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        self.tracer = self.provider.get_tracer("gateway")
        self.SpanContext = SpanContext
        self.TraceFlags = TraceFlags
        self.NonRecordingSpan = NonRecordingSpan
        self.SpanKind = SpanKind
        self.set_span_in_context = set_span_in_context

    def start_server_span(self, trace: TraceContext, name: str) -> Any:
        """Start the request's server span as a child of the client's span (if any)."""
        context = None
        if trace.parent_span_id is not None:
            parent = self.SpanContext(
                trace_id=int(trace.trace_id, 16),
                span_id=int(trace.parent_span_id, 16),
                is_remote=True,
                trace_flags=self.TraceFlags(int(trace.flags, 16)),
            )
            context = self.set_span_in_context(self.NonRecordingSpan(parent))
        span = self.tracer.start_span(name, context=context, kind=self.SpanKind.SERVER)
        self._adopt(trace, span)
        return span

    def start_child(self, trace: TraceContext, name: str, *, client: bool = False) -> Any:
        """Start a span under the request's server span."""
        context = self.set_span_in_context(trace.server_span)
        kind = self.SpanKind.CLIENT if client else self.SpanKind.INTERNAL
        return self.tracer.start_span(name, context=context, kind=kind)

    @staticmethod
    def _adopt(trace: TraceContext, span: Any) -> None:
        span_context = span.get_span_context()
        trace.trace_id = f"{span_context.trace_id:032x}"
        trace.span_id = f"{span_context.span_id:016x}"
        trace.flags = f"{int(span_context.trace_flags):02x}"


_state: dict[str, Any] = {"ready": False, "tracer": None}
_lock = threading.Lock()


def otlp_traces_endpoint() -> str | None:
    """Where spans go: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else ENDPOINT + /v1/traces."""
    if settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:
        return str(settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
    base = settings.OTEL_EXPORTER_OTLP_ENDPOINT
    return f"{base.rstrip('/')}/v1/traces" if base else None


def _forget_tracer() -> None:
    # The exporter's thread does not survive a fork: the child builds its own provider.
    _state["ready"] = False
    _state["tracer"] = None


os.register_at_fork(after_in_child=_forget_tracer)


def active_tracer() -> _Tracer | None:
    """This process's tracer, built on first use after a fork; None when tracing is off."""
    if _state["ready"]:
        return _state["tracer"]
    with _lock:
        if not _state["ready"]:
            endpoint = otlp_traces_endpoint()
            tracer = None
            if endpoint:
                try:
                    tracer = _Tracer(endpoint)
                except Exception:
                    logger.exception("tracing disabled: could not set up the OTLP exporter")
            _state["tracer"] = tracer
            _state["ready"] = True
    return _state["tracer"]


def begin(meta: dict[str, Any], method: str) -> TraceContext:
    """The request's trace context: the client's trace continued, or a new one started."""
    parsed = parse_traceparent(meta.get("HTTP_TRACEPARENT"))
    if parsed is None:
        trace = TraceContext(random_hex(16), None, "01")
    else:
        trace = TraceContext(parsed[0], parsed[1], parsed[2])
    tracer = active_tracer()
    if tracer is not None:
        # Span names stay a small set: an unknown method must not mint a new name.
        name = method if method in _SPAN_METHODS else "OTHER"
        trace.server_span = tracer.start_server_span(trace, f"gateway {name}")
    return trace


def start_step(trace: TraceContext | None, name: str, *, client: bool = False) -> Any:
    """Start a step's span when exporting (else None); a client span becomes the parent."""
    if trace is None or trace.server_span is None:
        return None
    tracer = _state["tracer"]
    span = tracer.start_child(trace, name, client=client)
    if client:
        trace.span_id = f"{span.get_span_context().span_id:016x}"
    return span


def end_span(span: Any, attributes: dict[str, Any] | None = None, error: bool = False) -> None:
    """End a span started by this module (None is ignored)."""
    if span is None:
        return
    if attributes:
        span.set_attributes(attributes)
    if error:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR))
    span.end()


def force_flush(timeout_seconds: float = 5.0) -> bool:
    """Export finished spans now (tests, shutdown); True when there was nothing to do or done."""
    tracer = _state["tracer"]
    if tracer is None:
        return True
    return bool(tracer.provider.force_flush(int(timeout_seconds * 1000)))


def reset() -> None:
    """Shut the exporter down and forget it; the next request re-reads the settings."""
    with _lock:
        tracer = _state["tracer"]
        _state["tracer"] = None
        _state["ready"] = False
    if tracer is not None:
        tracer.provider.shutdown()  # exports what is still queued, then stops the thread

"""Tracing: W3C traceparent to the upstream, and OTLP span export only when configured."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_project import tracing
from tests.support.observability import LineCapture, captured
from tests.support.otlp_receiver import OtlpReceiver

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def access_log() -> Iterator[LineCapture]:
    """Every line the `gateway.access` logger writes during the test."""
    with captured("gateway.access") as lines:
        yield lines


def _received_traceparent(response) -> list[str]:
    return json.loads(response.content)["headers"]["traceparent"].split("-")


def test_upstream_continues_the_clients_trace_with_the_gateways_span(
    client, make_route, upstream, access_log
):
    make_route("/api/v1/traced/**", upstream.url)
    response = client.get(
        "/api/v1/traced/echo",
        HTTP_TRACEPARENT=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
        HTTP_TRACESTATE="vendor=abc",
    )
    version, trace_id, parent, flags = _received_traceparent(response)
    assert (version, trace_id, flags) == ("00", CLIENT_TRACE, "01")
    assert parent != CLIENT_SPAN and len(parent) == 16  # the gateway's own span
    assert json.loads(response.content)["headers"]["tracestate"] == "vendor=abc"
    assert access_log.records()[0]["trace_id"] == CLIENT_TRACE


def test_a_new_trace_is_started_when_the_client_sent_none_or_a_bad_one(
    client, make_route, upstream, access_log
):
    make_route("/api/v1/fresh/**", upstream.url)
    first = _received_traceparent(client.get("/api/v1/fresh/echo"))
    bad = f"00-{'0' * 32}-{CLIENT_SPAN}-01"
    second = _received_traceparent(client.get("/api/v1/fresh/echo", HTTP_TRACEPARENT=bad))
    for version, trace_id, parent, flags in (first, second):
        assert version == "00" and len(trace_id) == 32 and set(trace_id) != {"0"}
        assert len(parent) == 16 and flags == "01"
    assert first[1] != second[1]
    assert [line["trace_id"] for line in access_log.records()] == [first[1], second[1]]


@pytest.fixture
def otlp(settings) -> Iterator[OtlpReceiver]:
    """A local OTLP receiver, with the gateway's tracer pointed at it for this test."""
    with OtlpReceiver() as receiver:
        tracing.reset()
        settings.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url
        try:
            yield receiver
        finally:
            tracing.reset()
            settings.OTEL_EXPORTER_OTLP_ENDPOINT = None


def test_spans_are_exported_over_otlp_with_the_ids_the_upstream_saw(
    client, make_route, upstream, otlp
):
    make_route("/api/v1/spans/**", upstream.url, service="spans-svc")
    response = client.get(
        "/api/v1/spans/echo", HTTP_TRACEPARENT=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    )
    assert response.status_code == 200
    _, trace_id, upstream_parent, _ = _received_traceparent(response)
    assert tracing.force_flush()
    spans = {span["name"]: span for span in otlp.spans()}
    assert {"gateway GET", "gateway.authenticate", "gateway.authorize", "gateway.limit"} <= set(
        spans
    )
    server = spans["gateway GET"]
    assert server["trace_id"] == CLIENT_TRACE == trace_id
    assert server["parent_span_id"] == CLIENT_SPAN
    assert server["attributes"]["http.route"] == "ANY /api/v1/spans/**"
    assert server["attributes"]["http.response.status_code"] == 200
    forward = spans["gateway.forward"]
    assert forward["span_id"] == upstream_parent  # the upstream's parent is an exported span
    assert forward["parent_span_id"] == server["span_id"]
    assert forward["attributes"]["server.address"] == upstream.url
    for step in ("gateway.authenticate", "gateway.authorize", "gateway.limit"):
        assert spans[step]["parent_span_id"] == server["span_id"]


def test_failed_requests_export_an_error_span(client, make_route, otlp):
    make_route("/api/v1/broken/**", "http://127.0.0.1:9", service="broken-svc")
    response = client.get("/api/v1/broken/echo")
    assert response.status_code >= 500
    assert tracing.force_flush()
    server = next(span for span in otlp.spans() if span["name"] == "gateway GET")
    assert server["error"] is True


def test_opentelemetry_is_never_imported_without_an_endpoint():
    header = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    code = (
        "import os, sys, django;"
        "os.environ.pop('OTEL_EXPORTER_OTLP_ENDPOINT', None);"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'gateway_project.test_settings';"
        "django.setup();"
        "from gateway_project import tracing, observability;"
        f"trace = tracing.begin({{'HTTP_TRACEPARENT': {header!r}}}, 'GET');"
        "assert trace.server_span is None and tracing.active_tracer() is None;"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    env = {"PATH": "/usr/bin:/bin", "SECRET_KEY": "x"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

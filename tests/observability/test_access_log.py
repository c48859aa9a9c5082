"""The access log: one JSON line per request, with the fields operators need and no secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from routing.pipeline import Authenticate
from tests.support.gateway_server import free_port
from tests.support.observability import (
    LineCapture,
    authenticate_alice,
    captured,
    sample,
)

SECRET = "s3cr3t-value-never-logged"


@pytest.fixture
def access_log() -> Iterator[LineCapture]:
    """Every line the `gateway.access` logger writes during the test."""
    with captured("gateway.access") as lines:
        yield lines


@pytest.fixture
def error_log() -> Iterator[LineCapture]:
    """Every line the `gateway.errors` logger writes during the test."""
    with captured("gateway.errors") as lines:
        yield lines


def test_each_proxied_request_writes_one_json_line_with_its_fields(
    client, make_route, upstream, access_log
):
    make_route("/api/v1/logs/**", upstream.url, service="logs-svc")
    response = client.get(
        "/api/v1/logs//echo/./tasks",
        HTTP_X_REQUEST_ID="req-log-0001",
        HTTP_AUTHORIZATION=f"Bearer {SECRET}",
        REMOTE_ADDR="127.0.0.9",
    )
    assert response.status_code == 200
    assert len(access_log.lines) == 1
    line = access_log.records()[0]
    assert line["request_id"] == "req-log-0001"
    assert line["method"] == "GET"
    assert line["path"] == "/api/v1/logs/echo/tasks"  # normalized, not as sent
    assert line["route"] == "ANY /api/v1/logs/**"
    assert line["service"] == "logs-svc"
    assert line["client"] == "127.0.0.9"
    assert line["status"] == 200
    assert line["bytes_in"] == 0
    assert line["bytes_out"] == len(response.content)
    assert line["upstream"] == upstream.url
    assert line["retries"] == 0
    assert 0 < line["upstream_ms"] <= line["total_ms"]
    assert line["consumer"] is None and line["limit"] == "unlimited"
    assert len(line["trace_id"]) == 32
    assert SECRET not in access_log.lines[0]


def test_request_body_size_and_retries_are_logged(client, make_route, upstream, access_log):
    make_route("/api/v1/retry/**", upstream.url, retry=2)
    response = client.put(
        "/api/v1/retry/flaky/1/item", data=b"x" * 300, content_type="application/octet-stream"
    )
    assert response.status_code == 200, response.content
    line = access_log.records()[0]
    assert line["method"] == "PUT"
    assert line["bytes_in"] == 300
    assert line["retries"] == 1


def test_trace_requests_adds_headers_with_credentials_redacted(
    client, make_route, upstream, access_log, settings
):
    settings.TRACE_REQUESTS = True
    make_route("/api/v1/trace/**", upstream.url)
    response = client.get(
        f"/api/v1/trace/echo?page=2&access_token={SECRET}&token={SECRET}",
        HTTP_AUTHORIZATION=f"Bearer {SECRET}",
        HTTP_COOKIE=f"sessionid={SECRET}",
        HTTP_X_API_KEY=SECRET,
        HTTP_X_CUSTOM="visible",
    )
    assert response.status_code == 200
    raw = access_log.lines[0]
    assert SECRET not in raw
    line = json.loads(raw)
    assert line["request_headers"]["authorization"] == "[REDACTED]"
    assert line["request_headers"]["cookie"] == "[REDACTED]"
    assert line["request_headers"]["x-api-key"] == "[REDACTED]"
    assert line["request_headers"]["x-custom"] == "visible"
    assert line["response_headers"]["x-upstream"] == "upstream-a"
    assert "page=2" in line["query"] and "access_token=%5BREDACTED%5D" in line["query"]


def test_trace_requests_redacts_set_cookie_of_the_answer(client, db, access_log, settings):
    settings.TRACE_REQUESTS = True
    client.cookies["sessionid"] = SECRET
    response = client.get("/health")
    response.set_cookie("probe", SECRET)  # the answer as the log saw it carries no cookie
    line = access_log.records()[0]
    assert line["route"] == "(internal)"
    assert line["request_headers"]["cookie"] == "[REDACTED]"
    assert SECRET not in access_log.lines[0]


def test_unmatched_path_is_logged_under_a_fixed_route_label(client, db, access_log):
    response = client.get("/nothing/here/12345")
    assert response.status_code == 404
    line = access_log.records()[0]
    assert line["route"] == "(unmatched)"
    assert line["status"] == 404
    assert line["error"] is None


def test_consumer_and_limit_verdict_are_logged_and_rejection_counted(
    client, make_route, upstream, access_log, monkeypatch
):
    monkeypatch.setattr(Authenticate, "run", authenticate_alice)
    make_route("/api/v1/limited/**", upstream.url, rate_limit_requests=1)
    route = "ANY /api/v1/limited/**"
    before = sample("gateway_limit_rejections_total", route=route, policy="rate")
    assert client.get("/api/v1/limited/echo").status_code == 200
    response = client.get("/api/v1/limited/echo")
    assert response.status_code == 429
    first, second = access_log.records()
    assert first["limit"] == "allowed"
    assert second["consumer"] == "alice" and second["consumer_id"] == "42"
    assert second["limit"] == "limited:rate"
    assert second["upstream"] is None and second["upstream_ms"] is None
    after = sample("gateway_limit_rejections_total", route=route, policy="rate")
    assert after == before + 1
    assert upstream.count("/") == 1


def test_gateway_5xx_is_logged_with_request_id_and_cause_and_counted(
    client, make_route, access_log, error_log
):
    make_route("/api/v1/down/**", f"http://127.0.0.1:{free_port()}", service="down-svc")
    # A refused connection: the gateway answers 502 itself (the upstream never did).
    codes = ("upstream_unavailable",)
    errors_before = {code: sample("gateway_server_errors_total", code=code) for code in codes}
    kinds_before = {
        code: sample("gateway_upstream_errors_total", service="down-svc", kind=code[9:])
        for code in codes
    }
    response = client.get("/api/v1/down/echo", HTTP_X_REQUEST_ID="req-down-0001")
    assert response.status_code == 502
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    code = body["code"]
    assert code in codes and body["request_id"] == "req-down-0001"
    assert "Error" not in response.content.decode()  # no exception names or text
    assert access_log.records()[0]["error"] == code
    (message,) = [m for m in error_log.lines if "req-down-0001" in m]
    assert f"code={code}" in message and "cause=Upstream" in message
    assert sample("gateway_server_errors_total", code=code) == errors_before[code] + 1
    assert (
        sample("gateway_upstream_errors_total", service="down-svc", kind=code[9:])
        == kinds_before[code] + 1
    )


def test_upstream_5xx_is_relayed_without_counting_as_a_gateway_error(
    client, make_route, upstream, access_log
):
    make_route("/api/v1/relay/**", upstream.url)
    before = sample("gateway_server_errors_total", code="http_500")
    response = client.get("/api/v1/relay/status/500")
    assert response.status_code == 500
    assert access_log.records()[0]["error"] is None
    assert sample("gateway_server_errors_total", code="http_500") == before


def test_a_failing_log_handler_never_fails_the_request(client, make_route, upstream, access_log):
    make_route("/api/v1/robust/**", upstream.url)

    def broken(record: Any) -> None:
        raise RuntimeError("disk full")

    access_log.emit = broken
    access_log.handleError = broken
    before = sample("gateway_observability_failures_total", part="access_log")
    response = client.get("/api/v1/robust/echo")
    assert response.status_code == 200
    assert sample("gateway_observability_failures_total", part="access_log") == before + 1


def test_streamed_answer_is_logged_once_after_its_last_byte(
    client, make_route, upstream, access_log
):
    make_route("/api/v1/stream/**", upstream.url)
    size = 1024 * 1024  # past the buffering limit: streamed through
    in_flight_before = sample("gateway_requests_in_flight")
    response = client.get(f"/api/v1/stream/big/{size}")
    assert response.streaming
    assert access_log.lines == []  # nothing recorded before the body went out
    body = b"".join(response.streaming_content)
    response.close()
    assert len(body) == size
    (line,) = access_log.records()
    assert line["bytes_out"] == size and line["status"] == 200
    assert sample("gateway_requests_in_flight") == in_flight_before


def test_observability_adds_no_database_query_to_a_proxied_request(
    client, make_route, upstream, access_log, django_assert_num_queries
):
    make_route("/api/v1/noquery/**", upstream.url)
    assert client.get("/api/v1/noquery/echo").status_code == 200  # compiles the route table
    with django_assert_num_queries(0):
        for _ in range(3):
            assert client.get("/api/v1/noquery/echo").status_code == 200
    assert len(access_log.lines) == 4

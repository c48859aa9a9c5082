"""Hostile requests on the wire, refused before any upstream contact, with problem+json."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from routing.models import Route, Service
from tests.security.wire import get, header_of, problem_of, raw_exchange, status_of
from tests.support.gateway_server import GatewayServer

# django_db makes pytest-django create the test database the gateway subprocess shares.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

MAX_LINE = 1024
MAX_HEADERS = 20
MAX_HEADER_SIZE = 2048


@pytest.fixture(scope="module")
def gateway(django_db_setup, django_db_blocker, upstream_server) -> Iterator[GatewayServer]:
    """A gateway with small request limits and an open route to the session's upstream."""
    with django_db_blocker.unblock():
        service = Service.objects.create(name="hostile", url=upstream_server.url)
        Route.objects.create(path="/svc/**", service=service, authentication="none")
        Route.objects.create(
            path="/quick/**", service=service, authentication="none", timeout_ms=300, retry=0
        )
        try:
            with GatewayServer(
                GATEWAY_MAX_REQUEST_LINE=str(MAX_LINE),
                GATEWAY_MAX_HEADERS=str(MAX_HEADERS),
                GATEWAY_MAX_HEADER_SIZE=str(MAX_HEADER_SIZE),
                GATEWAY_MAX_BODY_SIZE="1KiB",
            ) as server:
                yield server
        finally:
            Route.objects.filter(service=service).delete()
            service.delete()


def _refused(gateway: GatewayServer, request: bytes, status: int, upstream) -> dict:
    answer = raw_exchange(gateway.port, request)
    assert status_of(answer) == status, answer[:300]
    assert upstream.count() == 0
    problem = problem_of(answer)
    assert problem["status"] == status
    return problem


def test_request_line_too_long_is_414_problem(gateway, upstream):
    problem = _refused(gateway, get("/svc/" + "a" * MAX_LINE), 414, upstream)
    assert problem["code"] == "uri_too_long"


def test_too_many_headers_is_431_problem(gateway, upstream):
    headers = [f"X-Filler-{i}: x" for i in range(MAX_HEADERS + 1)]
    problem = _refused(gateway, get("/svc/echo", *headers), 431, upstream)
    assert problem["code"] == "headers_too_large"


def test_one_oversized_header_is_431_problem(gateway, upstream):
    _refused(gateway, get("/svc/echo", "X-Big: " + "b" * MAX_HEADER_SIZE), 431, upstream)


def test_declared_body_over_the_limit_is_413_problem(gateway, upstream):
    request = (
        b"POST /svc/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Length: 1025\r\n\r\n"
    )
    problem = _refused(gateway, request, 413, upstream)
    assert problem["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("request_bytes", "echo"),
    [
        pytest.param(b"GARBAGE\r\n\r\n", b"GARBAGE", id="no-method-or-version"),
        pytest.param(
            b"GET /svc/echo HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n", b"9.9", id="bad-version"
        ),
        pytest.param(
            b"GET /svc/echo HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n", b"Host", id="header-no-colon"
        ),
        pytest.param(
            b"GET /svc/echo HTTP/1.1\r\nX(Bad): 1\r\n\r\n", b"X(Bad)", id="invalid-name-char"
        ),
        pytest.param(
            b"GET /svc/e\x01cho HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"cho", id="ctl-in-path"
        ),
    ],
)
def test_malformed_request_is_400_problem_without_its_bytes(gateway, upstream, request_bytes, echo):
    answer = raw_exchange(gateway.port, request_bytes)
    assert status_of(answer) == 400, answer[:300]
    problem = problem_of(answer)
    assert echo not in answer.split(b"\r\n\r\n", 1)[1]  # no exception text quoting the request
    assert problem["code"] in {"bad_request", "invalid_header", "invalid_header_name"}
    assert upstream.count() == 0


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"X-A: a\rX-Injected: 1\r\n", id="bare-cr-in-value"),
        pytest.param(b"X-A: a\x00b\r\n", id="nul-in-value"),
        pytest.param(b"X-A: a\x01b\r\n", id="control-byte-in-value"),
        pytest.param(b"X-A: a\r\n folded\r\n", id="obs-fold"),
        pytest.param(b"X-A: a\nX-Injected: 1\r\n", id="bare-lf-line-end"),
        pytest.param(b"X-A : a\r\n", id="space-before-colon"),
        pytest.param(b" X-A: a\r\n", id="leading-space-first-header"),
    ],
)
def test_a_malformed_header_line_is_400_and_never_forwarded(gateway, upstream, header):
    # The request head's parser (gunicorn_h1c's picohttpparser) is the first to read these.
    request = b"GET /svc/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\n"
    problem = _refused(gateway, request, 400, upstream)
    assert problem["code"] in {"bad_request", "invalid_header", "invalid_header_name"}


@pytest.mark.parametrize(
    "framing",
    [
        pytest.param(
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", id="content-length-and-chunked"
        ),
        pytest.param(b"Content-Length: 5\r\nContent-Length: 6\r\n", id="two-content-lengths"),
        pytest.param(b"Content-Length: 5\r\nContent-Length: 5\r\n", id="repeated-content-length"),
        pytest.param(b"Content-Length: +5\r\n", id="signed-content-length"),
        pytest.param(b"Transfer-Encoding: chunked, chunked\r\n", id="double-chunked"),
        pytest.param(b"Transfer-Encoding: identity\r\n", id="te-not-ending-in-chunked"),
    ],
)
def test_ambiguous_body_framing_is_400_and_never_forwarded(gateway, upstream, framing):
    request = (
        b"POST /svc/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + framing
        + b"\r\n5\r\nhello\r\n0\r\n\r\nGET /svc/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    problem = _refused(gateway, request, 400, upstream)
    assert problem["code"] == "invalid_header"
    assert header_of(raw_exchange(gateway.port, request), "Connection") == "close"


def test_unknown_host_is_400_problem_on_the_wire(gateway, upstream):
    answer = raw_exchange(gateway.port, get("/svc/echo", host="evil.example"))
    assert status_of(answer) == 400
    problem_of(answer)
    assert upstream.count() == 0


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "/\\evil.example/x",
        "http://evil.example/svc/echo",
        "/svc/..//evil.example/x",
        "/svc/@evil.example/x",
    ],
)
def test_request_target_never_changes_the_upstream_host(gateway, upstream, target):
    answer = raw_exchange(gateway.port, get(target))
    status = status_of(answer)
    if status == 200:
        # Served at all: by the configured upstream, with its own Host.
        assert upstream.count() == 1
        assert upstream.received[-1].headers["host"].startswith("127.0.0.1")
    else:
        assert status in {400, 404}, answer[:300]
        problem_of(answer)
        assert upstream.count() == 0


def test_header_with_underscore_is_dropped_by_default(gateway, upstream):
    answer = raw_exchange(
        gateway.port, get("/svc/echo", "X_Consumer_Id: forged", "X-Kept: yes", "X_Extra: 1")
    )
    assert status_of(answer) == 200, answer[:300]
    seen = upstream.received[-1].headers
    assert seen["x-kept"] == "yes"
    assert not [name for name in seen if "_" in name or name == "x-consumer-id"]


def test_header_with_underscore_is_400_problem_when_set_to_reject(django_db_setup, upstream):
    with GatewayServer(GATEWAY_UNDERSCORE_HEADERS="reject") as server:
        answer = raw_exchange(server.port, get("/health", "X_Forwarded_For: 10.0.0.1"))
    assert status_of(answer) == 400, answer[:300]
    assert problem_of(answer)["code"] == "invalid_header_name"


def test_upstream_header_over_http_client_line_limit_is_502_problem(gateway, upstream):
    # http.client refuses a header line over 64 KiB (and more than 100 header lines).
    answer = raw_exchange(gateway.port, get("/svc/headers-big/70000"))
    assert status_of(answer) == 502, answer[:300]
    assert problem_of(answer)["code"] == "upstream_invalid_response"
    assert b"aaaa" not in answer


def test_upstream_header_within_limits_passes(gateway, upstream):
    answer = raw_exchange(gateway.port, get("/svc/headers-big/4000"))
    assert status_of(answer) == 200


def test_upstream_slower_than_the_route_timeout_is_504_problem(gateway, upstream):
    answer = raw_exchange(gateway.port, get("/quick/slow/3000"))
    assert status_of(answer) == 504, answer[:300]
    assert problem_of(answer)["code"] == "upstream_timeout"

"""Client framing on the wire: malformed chunked bodies, Host, absolute-form request targets."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from routing.models import Route, Service
from tests.security.wire import header_of, problem_of, raw_exchange, status_of
from tests.support.gateway_server import GatewayServer

# django_db makes pytest-django create the test database the gateway subprocess shares.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

SMUGGLED = b"GET /svc/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture(scope="module")
def gateway(django_db_setup, django_db_blocker, upstream_server) -> Iterator[GatewayServer]:
    """A gateway with an open route to the session's upstream."""
    with django_db_blocker.unblock():
        service = Service.objects.create(name="framing", url=upstream_server.url)
        Route.objects.create(path="/svc/**", service=service, authentication="none")
        try:
            with GatewayServer(GATEWAY_WORKERS="1") as server:
                yield server
        finally:
            Route.objects.filter(service=service).delete()
            service.delete()


def _exchange_until_close(port: int, request: bytes, timeout: float = 10) -> tuple[bytes, bool]:
    """Send `request`; everything answered, and whether the server closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            return answer, False  # still open: kept alive after a broken body
        except ConnectionResetError:
            pass
    return answer, True


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"g\r\nhello\r\n0\r\n\r\n", id="size-g"),
        pytest.param(b"-5\r\nhello\r\n0\r\n\r\n", id="size-negative"),
        pytest.param(b"0x5\r\nhello\r\n0\r\n\r\n", id="size-0x-prefix"),
        pytest.param(b"5\r\nhelloXX0\r\n\r\n", id="missing-crlf-after-data"),
        pytest.param(b"5 garbage\r\nhello\r\n0\r\n\r\n", id="size-with-junk"),
    ],
)
def test_malformed_chunked_body_is_400_problem_and_the_connection_closes(gateway, upstream, body):
    request = (
        b"POST /svc/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        + body
        + SMUGGLED
    )
    answer, closed = _exchange_until_close(gateway.port, request)
    assert status_of(answer) == 400, answer[:300]
    assert problem_of(answer)["code"] in {"malformed_body", "bad_request"}
    assert header_of(answer, "Connection") == "close"
    assert closed, "the connection stayed open after a malformed body"
    assert answer.count(b"HTTP/1.1 ") == 1  # the bytes after the body were never served
    assert upstream.count() == 0
    log = gateway.log()
    assert "Traceback" not in log and "hello" not in log
    assert "malformed request body" in log or "Invalid request" in log


def test_malformed_chunked_body_the_app_never_reads_closes_the_connection(gateway, upstream):
    # /health ignores the body; gunicorn's drain before keep-alive meets the bad chunk.
    request = (
        b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nhello\r\n0\r\n\r\n" + SMUGGLED
    )
    answer, closed = _exchange_until_close(gateway.port, request)
    assert closed
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    assert b"smuggled" not in answer
    assert upstream.count() == 0
    assert "Traceback" not in gateway.log()


def test_well_formed_chunked_body_is_forwarded(gateway, upstream):
    request = (
        b"POST /svc/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    answer = raw_exchange(gateway.port, request)
    assert status_of(answer) == 200, answer[:300]
    assert upstream.received[-1].body == b"hello world"


def test_http11_without_host_is_400_problem(gateway, upstream):
    answer = raw_exchange(gateway.port, b"GET /svc/echo HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 400, answer[:300]
    assert problem_of(answer)["code"] == "missing_host"
    assert upstream.count() == 0
    assert "Traceback" not in gateway.log()


def test_two_host_headers_are_400_problem(gateway, upstream):
    request = b"GET /svc/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n"
    answer = raw_exchange(gateway.port, request)
    assert status_of(answer) == 400, answer[:300]
    problem_of(answer)
    assert upstream.count() == 0


def test_http10_without_host_is_served(gateway, upstream):
    answer = raw_exchange(gateway.port, b"GET /svc/echo HTTP/1.0\r\n\r\n")
    assert status_of(answer) == 200, answer[:300]
    assert upstream.count() == 1


def test_absolute_form_with_a_foreign_authority_is_400_even_with_an_allowed_host(gateway, upstream):
    request = (
        b"GET http://evil.example/svc/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    answer = raw_exchange(gateway.port, request)
    assert status_of(answer) == 400, answer[:300]
    problem_of(answer)
    assert upstream.count() == 0


def test_absolute_form_with_an_allowed_authority_is_served_under_that_authority(gateway, upstream):
    authority = f"127.0.0.1:{gateway.port}".encode()
    request = (
        b"GET http://" + authority + b"/svc/echo?q=1 HTTP/1.1\r\n"
        b"Host: evil.example\r\nConnection: close\r\n\r\n"
    )
    answer = raw_exchange(gateway.port, request)
    assert status_of(answer) == 200, answer[:300]
    forwarded = upstream.received[-1]
    assert forwarded.headers["x-forwarded-host"] == authority.decode()
    assert forwarded.path.endswith("/echo") and forwarded.query == "q=1"


@pytest.mark.parametrize(
    "target",
    [b"ftp://127.0.0.1/svc/echo", b"http://user@127.0.0.1/svc/echo", b"http:///svc/echo"],
)
def test_absolute_form_that_is_not_a_plain_http_authority_is_400(gateway, upstream, target):
    request = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    answer = raw_exchange(gateway.port, request)
    assert status_of(answer) == 400, answer[:300]
    problem_of(answer)
    assert upstream.count() == 0


def test_pipelined_requests_are_both_answered_in_order(gateway, upstream):
    request = (
        b"GET /svc/echo/first HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        b"GET /svc/echo/second HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    answer, closed = _exchange_until_close(gateway.port, request)
    assert closed
    assert answer.count(b"HTTP/1.1 200 ") == 2, answer[:500]
    assert [r.path.rsplit("/", 1)[1] for r in upstream.received] == ["first", "second"]


def test_more_pipelined_requests_than_a_thread_serves_in_a_row_are_all_answered_in_order(
    gateway, upstream
):
    # A thread serves a connection's next request itself while it is already there (at most
    # gunicorn_worker._SERVED_IN_A_ROW in a row), then hands the rest back to the event loop.
    count = 40
    request = b"".join(
        b"GET /svc/echo/%d HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n"
        % (n, b"Connection: close\r\n" if n == count - 1 else b"")
        for n in range(count)
    )
    answer, closed = _exchange_until_close(gateway.port, request, timeout=30)
    assert closed
    assert answer.count(b"HTTP/1.1 200 ") == count, answer[:500]
    assert [r.path.rsplit("/", 1)[1] for r in upstream.received] == [str(n) for n in range(count)]


def test_a_thread_serving_pipelined_requests_lets_a_waiting_connection_go_first(gateway, upstream):
    # One request thread, one client pipelining slow requests: the thread serves that client's
    # next request itself only while no other connection waits, so a second client is served
    # after a few of them, not after the thread's whole run.
    count = 20
    pipelined = b"".join(
        b"GET /svc/slow/100/%d HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n"
        % (n, b"Connection: close\r\n" if n == count - 1 else b"")
        for n in range(count)
    )
    with (
        GatewayServer(GATEWAY_WORKERS="1", GATEWAY_THREADS="1") as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=30) as busy,
    ):
        busy.sendall(pipelined)
        deadline = time.monotonic() + 20
        while upstream.count("/svc/slow") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # until the thread is serving the busy client's requests
        other = raw_exchange(
            server.port,
            b"GET /svc/echo/other HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        answer = b""
        while chunk := busy.recv(65536):
            answer += chunk
    assert status_of(other) == 200
    assert answer.count(b"HTTP/1.1 200 ") == count
    paths = [r.path for r in upstream.received]
    assert paths.index("/svc/echo/other") <= count // 2, paths


def test_a_head_larger_than_any_accepted_head_is_431_without_waiting_for_its_end(gateway):
    # Default limits allow 8190 + 100 x 8192 bytes of head; this one never ends, never stalls.
    request = b"GET /svc/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Fill: " + b"f" * 830_000
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)  # so the server's lingering close ends cleanly (no reset)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert status_of(answer) == 431, answer[:300]
    assert problem_of(answer)["code"] == "headers_too_large"

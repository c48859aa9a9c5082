"""Tests for the test upstream server itself."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from .upstream import UpstreamServer
from .waiting import wait_until

TIMEOUT = 5.0


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    """A started upstream, stopped afterwards."""
    with UpstreamServer("up-test") as server:
        yield server
    assert server.errors == []


def _conn(server: UpstreamServer) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)


def test_url_and_port(upstream: UpstreamServer) -> None:
    assert upstream.port > 0
    assert upstream.url == f"http://127.0.0.1:{upstream.port}"


def test_echo_post_records_request(upstream: UpstreamServer) -> None:
    body = b"hello world" * 10_000  # 110 000 bytes, more than the 64 KiB sample
    resp = requests.post(
        f"{upstream.url}/svc/echo/a%20b?x=1&y=2",
        data=body,
        headers={"X-Custom": "yes", "Content-Type": "text/plain"},
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["X-Upstream"] == "up-test"
    assert int(resp.headers["Content-Length"]) == len(resp.content)
    data = resp.json()
    digest = hashlib.sha256(body).hexdigest()
    assert data["server"] == "up-test"
    assert data["method"] == "POST"
    assert data["path"] == "/svc/echo/a%20b"
    assert data["query"] == "x=1&y=2"
    assert data["body_length"] == len(body)
    assert data["body_sha256"] == digest
    assert data["headers"]["x-custom"] == "yes"

    (rec,) = upstream.received
    assert (rec.method, rec.path, rec.query) == ("POST", "/svc/echo/a%20b", "x=1&y=2")
    assert rec.body_length == len(body)
    assert rec.body_sha256 == digest
    assert rec.body == body[: 64 * 1024]
    assert rec.headers["content-length"] == str(len(body))
    assert ("X-Custom", "yes") in rec.header_list


def test_echo_chunked_request_body(upstream: UpstreamServer) -> None:
    parts = [b"a" * 70_000, b"", b"bc", b"d" * 5]
    payload = b"".join(parts)
    resp = requests.put(f"{upstream.url}/echo", data=iter([p for p in parts if p]), timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.json()["body_length"] == len(payload)
    rec = upstream.received[-1]
    assert rec.headers["transfer-encoding"] == "chunked"
    assert rec.body_sha256 == hashlib.sha256(payload).hexdigest()


def test_chunked_request_with_extensions_and_trailers(upstream: UpstreamServer) -> None:
    with socket.create_connection(("127.0.0.1", upstream.port), timeout=TIMEOUT) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        data = json.loads(resp.read())
    assert data["body_length"] == 15
    assert data["body_sha256"] == hashlib.sha256(b"hello0123456789").hexdigest()


def test_bad_chunked_body_is_400(upstream: UpstreamServer) -> None:
    with socket.create_connection(("127.0.0.1", upstream.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        assert resp.status == 400
        assert resp.getheader("Connection") == "close"


def test_repeated_headers_joined(upstream: UpstreamServer) -> None:
    conn = _conn(upstream)
    conn.putrequest("GET", "/echo")
    conn.putheader("X-Multi", "one")
    conn.putheader("x-multi", "two")
    conn.endheaders()
    data = json.loads(conn.getresponse().read())
    conn.close()
    assert data["headers"]["x-multi"] == "one, two"
    assert [h for h in upstream.received[0].header_list if h[0].lower() == "x-multi"] == [
        ("X-Multi", "one"),
        ("x-multi", "two"),
    ]


def test_status_codes(upstream: UpstreamServer) -> None:
    resp = requests.get(f"{upstream.url}/x/status/418", timeout=TIMEOUT)
    assert resp.status_code == 418
    assert resp.json() == {"status": 418}
    conn = _conn(upstream)
    conn.request("DELETE", "/status/204")
    r204 = conn.getresponse()
    assert r204.status == 204
    assert r204.read() == b""
    assert r204.getheader("Content-Length") is None
    conn.request("GET", "/status/503")  # same keep-alive connection
    r503 = conn.getresponse()
    assert r503.status == 503
    assert json.loads(r503.read()) == {"status": 503}
    conn.close()


def test_slow(upstream: UpstreamServer) -> None:
    start = time.monotonic()
    resp = requests.get(f"{upstream.url}/slow/300", timeout=TIMEOUT)
    # A lower bound only: a loaded machine makes the answer later, never earlier.
    assert time.monotonic() - start >= 0.3
    assert resp.json()["path"] == "/slow/300"


def test_big(upstream: UpstreamServer) -> None:
    resp = requests.get(f"{upstream.url}/big/1048576", timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.headers["Content-Length"] == "1048576"
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.content == b"x" * 1048576


def test_chunked_response(upstream: UpstreamServer) -> None:
    conn = _conn(upstream)
    conn.request("GET", "/chunked/3")
    resp = conn.getresponse()
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.read() == b"chunk\n" * 3
    conn.request("GET", "/health")  # connection stays usable
    assert json.loads(conn.getresponse().read()) == {"status": "ok"}
    conn.close()


def test_head_and_options(upstream: UpstreamServer) -> None:
    conn = _conn(upstream)
    conn.request("HEAD", "/big/1000")
    resp = conn.getresponse()
    assert resp.getheader("Content-Length") == "1000"
    assert resp.read() == b""
    conn.request("OPTIONS", "/echo")
    assert json.loads(conn.getresponse().read())["method"] == "OPTIONS"
    conn.request("PATCH", "/echo", body=b"{}")
    assert json.loads(conn.getresponse().read())["body_length"] == 2
    conn.close()
    assert [r.method for r in upstream.received] == ["HEAD", "OPTIONS", "PATCH"]


def test_redirect_not_followed(upstream: UpstreamServer) -> None:
    conn = _conn(upstream)
    conn.request("GET", "/redirect")
    resp = conn.getresponse()
    assert resp.status == 302
    assert resp.getheader("Location") == "/echo/redirected"
    assert resp.getheader("Content-Length") == "0"
    assert resp.read() == b""
    conn.close()
    assert upstream.count("/echo") == 0


def test_flaky(upstream: UpstreamServer) -> None:
    for _ in range(2):
        conn = _conn(upstream)
        conn.request("POST", "/flaky/2/a", body=b"data")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.getresponse()
        conn.close()
    conn = _conn(upstream)
    conn.request("POST", "/flaky/2/a", body=b"data")
    resp = conn.getresponse()
    assert resp.status == 200
    assert json.loads(resp.read())["body_length"] == 4
    conn.close()
    assert upstream.count("/flaky/2/a") == 3
    # Counters are per path and cleared by reset().
    assert requests.get(f"{upstream.url}/flaky/0/b", timeout=TIMEOUT).status_code == 200
    upstream.reset()
    assert upstream.received == []
    conn = _conn(upstream)
    conn.request("GET", "/flaky/1/a")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    conn.close()


def test_hop_headers(upstream: UpstreamServer) -> None:
    plain = requests.get(f"{upstream.url}/echo", timeout=TIMEOUT)
    assert "X-Hop" not in plain.headers
    resp = requests.get(f"{upstream.url}/echo?hop=1", timeout=TIMEOUT)
    assert resp.headers["X-Hop"] == "secret"
    assert resp.headers["Connection"] == "X-Hop"
    assert resp.headers["Keep-Alive"] == "timeout=5"


def test_headers_big_openapi_health(upstream: UpstreamServer) -> None:
    resp = requests.get(f"{upstream.url}/headers-big/5000", timeout=TIMEOUT)
    assert resp.headers["X-Big"] == "a" * 5000
    doc = requests.get(f"{upstream.url}/svc/openapi.json", timeout=TIMEOUT).json()
    assert doc["openapi"].startswith("3.0")
    assert set(doc["paths"]) == {"/tasks", "/tasks/{id}", "/internal/debug"}
    assert set(doc["paths"]["/tasks"]) == {"get", "post"}
    health = requests.get(f"{upstream.url}/health", timeout=TIMEOUT)
    assert health.json() == {"status": "ok"}


def test_bad_argument_is_400(upstream: UpstreamServer) -> None:
    assert requests.get(f"{upstream.url}/status/abc", timeout=TIMEOUT).status_code == 400
    assert requests.get(f"{upstream.url}/status/99", timeout=TIMEOUT).status_code == 400


def test_count(upstream: UpstreamServer) -> None:
    with requests.Session() as session:
        for path in ("/a/echo", "/a/x", "/b"):
            session.get(upstream.url + path, timeout=TIMEOUT)
    assert upstream.count() == 3
    assert upstream.count("/a/") == 2
    assert upstream.count("/c") == 0


# What stop() may take: far above a prompt stop on a loaded machine, far below what waiting
# would cost (an idle connection's SOCKET_TIMEOUT, or a 30 s slow request). Not a measurement.
STOP_BOUND = 10.0


def _stops_within(server: UpstreamServer, seconds: float) -> bool:
    """Whether server.stop() returns within `seconds` (run in a thread so a hang cannot block)."""
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(seconds)
    return not stopper.is_alive()


def test_stop_refuses_connections_and_closes_idle_ones() -> None:
    server = UpstreamServer("stopper")
    server.start()
    conn = _conn(server)
    conn.request("GET", "/echo")
    conn.getresponse().read()  # conn is now an idle keep-alive connection
    assert _stops_within(server, STOP_BOUND), "stop() waited on an idle keep-alive connection"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.request("GET", "/echo")
        conn.getresponse()
    conn.close()
    server.stop()  # idempotent


def test_stop_does_not_wait_for_slow_request() -> None:
    server = UpstreamServer("slowstop")
    server.start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            requests.get(f"{server.url}/slow/30000", timeout=TIMEOUT)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    wait_until(server.count, timeout=TIMEOUT, message="the slow request never arrived")
    assert _stops_within(server, STOP_BOUND), "stop() waited for the 30 s slow request"
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], requests.ConnectionError)


def test_restart_reuses_port() -> None:
    server = UpstreamServer()
    with server:
        port = server.port
    with server:
        assert server.port == port
        assert requests.get(f"{server.url}/health", timeout=TIMEOUT).status_code == 200

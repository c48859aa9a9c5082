"""The proxy served by real gunicorn: raw sockets, streaming in both directions, cookies."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from routing.models import Route, Service
from tests.support.gateway_server import GatewayServer

# django_db makes pytest-django create the test database the gateway subprocess shares.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

MAX_BODY = 32 * 1024 * 1024


@pytest.fixture(scope="module")
def gateway(django_db_setup, django_db_blocker, upstream_server) -> Iterator[GatewayServer]:
    """One gunicorn gateway for the module, with an open route to the session's upstream."""
    with django_db_blocker.unblock():
        service = Service.objects.create(name="e2e-proxy", url=upstream_server.url)
        Route.objects.create(path="/svc/**", service=service, authentication="none")
        try:
            with GatewayServer(GATEWAY_MAX_BODY_SIZE=str(MAX_BODY)) as server:
                yield server
        finally:
            Route.objects.filter(service=service).delete()
            service.delete()


def _raw(gateway: GatewayServer, request: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes and read the whole answer (the server closes after it)."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _worker_rss_kb(gateway: GatewayServer) -> int:
    assert gateway.process is not None
    pids = subprocess.run(
        ["pgrep", "-P", str(gateway.process.pid)], capture_output=True, text=True, check=True
    ).stdout.split()
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


@pytest.mark.parametrize("path", [b"/svc/a%2Fb", b"/svc/a%5cb", b"/svc/%252e%252e/x"])
def test_encoded_separators_on_the_wire_are_rejected_with_400(gateway, upstream, path):
    answer = _raw(
        gateway, b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"application/problem+json" in answer
    assert upstream.count() == 0


def test_declared_oversized_body_is_refused_before_it_is_sent(gateway, upstream):
    head = (
        "POST /svc/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n"
    )
    answer = _raw(gateway, head.encode())  # no body at all: the gateway must not wait for it
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert upstream.count() == 0


def test_chunked_upload_is_forwarded_with_its_length(gateway, upstream):
    body = b"0123456789abcdef" * 65536  # 1 MiB
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    connection.request(
        "POST", "/svc/echo", body=iter([body[:300_000], body[300_000:]]), encode_chunked=True
    )
    response = connection.getresponse()
    seen = json.loads(response.read())
    assert response.status == 200
    assert seen["body_length"] == len(body)
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert "transfer-encoding" not in seen["headers"]


def test_chunked_upload_over_the_limit_is_413_and_never_forwarded(gateway, upstream):
    piece = b"x" * (1024 * 1024)
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    connection.request("PUT", "/svc/echo", body=iter([piece] * 33), encode_chunked=True)
    assert connection.getresponse().status == 413
    assert upstream.count() == 0


def test_large_upload_streams_through(gateway, upstream):
    body = hashlib.sha256(b"seed").digest() * (20 * 1024 * 1024 // 32)  # 20 MiB
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    connection.request("PUT", "/svc/echo", body=body)
    seen = json.loads(connection.getresponse().read())
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_one_gib_download_streams_with_flat_worker_memory(gateway, upstream):
    size = 1024**3
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=60)
    connection.request("GET", "/svc/big/1048576")  # warm the workers up first
    connection.getresponse().read()
    before = _worker_rss_kb(gateway)
    connection.request("GET", f"/svc/big/{size}")
    response = connection.getresponse()
    assert response.status == 200
    received, peak = 0, before
    while chunk := response.read(1024 * 1024):
        received += len(chunk)
        if received % (128 * 1024 * 1024) < len(chunk):
            peak = max(peak, _worker_rss_kb(gateway))
    assert received == size
    assert peak - before < 64 * 1024, f"worker RSS grew {(peak - before) // 1024} MiB"


def test_each_set_cookie_header_reaches_the_client_separately(gateway, upstream):
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.request("GET", "/svc/cookies/3")
    response = connection.getresponse()
    cookies = response.headers.get_all("Set-Cookie")
    assert cookies == [
        f"c{i}=v{i}; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT" for i in range(3)
    ]


def test_keep_alive_connection_serves_several_requests(gateway, upstream):
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    for index in range(5):
        connection.request("GET", f"/svc/echo/{index}")
        response = connection.getresponse()
        assert json.loads(response.read())["path"] == f"/svc/echo/{index}"
    assert upstream.count("/svc/echo/") == 5

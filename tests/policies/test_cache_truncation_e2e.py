"""cache against an upstream whose body breaks off: a short body is never kept as the answer."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from routing.models import Route, Service
from tests.support.gateway_server import GatewayServer
from tests.support.raw_upstream import RawUpstream
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

# Past the 256 KiB the proxy reads whole, under the 1 MiB the cache keeps: streamed and kept.
_SENT = b"x" * (300 * 1024)


@pytest.fixture(scope="module")
def raw() -> Iterator[RawUpstream]:
    with RawUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(django_db_setup, django_db_blocker, raw) -> Iterator[GatewayServer]:
    with django_db_blocker.unblock():
        service = Service.objects.create(name="raw-cache", url=raw.url)
        Route.objects.create(
            path="/rawc/**",
            service=service,
            authentication="none",
            timeout_ms=5000,
            cache_ttl_ms=30_000,
        )
        try:
            with GatewayServer(GATEWAY_OUTLIER_CONSECUTIVE_FAILURES="0") as server:
                yield server
        finally:
            Route.objects.filter(service=service).delete()
            service.delete()


def _get(gateway: GatewayServer, path: str) -> tuple[int, str | None, bytes | None]:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=15)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        try:
            body: bytes | None = response.read()
        except (http.client.IncompleteRead, OSError):
            body = None  # cut short, as it should be when the upstream broke off
        return response.status, response.getheader("X-Cache"), body
    finally:
        connection.close()


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 409600\r\n\r\n",
        b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(_SENT):x}\r\n".encode(),
    ],
    ids=["content-length", "chunked"],
)
def test_a_body_the_upstream_broke_off_is_not_kept(gateway, raw, head):
    path = raw.script(
        f"/rawc/short-{head[:4].decode()}",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + head + _SENT,
    )
    first = _get(gateway, path)
    assert first[0] == 200 and first[1] == "MISS"
    assert first[2] is None  # the client saw the answer cut short
    status, verdict, _ = _get(gateway, path)
    assert status == 200
    assert verdict == "MISS", "a truncated body was stored and served as a HIT"
    assert raw.count(path) == 2


def test_a_complete_streamed_body_is_kept(gateway, raw):
    path = raw.script(
        "/rawc/whole",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        + f"Content-Length: {len(_SENT)}\r\n\r\n".encode()
        + _SENT,
    )
    assert _get(gateway, path)[1] == "MISS"
    # The entry is stored once the body's last byte went out, which may be just after the client
    # has it all: poll (bounded) for the HIT rather than racing the store.
    answers: list[tuple[int, str | None, bytes | None]] = []

    def hit() -> bool:
        answers.append(_get(gateway, path))
        return answers[-1][1] == "HIT"

    wait_until(hit, message=lambda: f"never a HIT: {[a[:2] for a in answers]}")
    assert answers[-1] == (200, "HIT", _SENT)

"""A key withdrawn from the issuer's JWKS stops working on every gunicorn worker, not just one.

Real gunicorn with two workers sharing Redis, a real JWKS server and a real upstream on
loopback. Every wait is bounded; nothing asserts how fast anything was.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator

import pytest
from django.conf import settings

from accounts.jwks_store import jwks_forget
from tests.support.gateway_server import GatewayServer
from tests.support.identity import protect
from tests.support.jwks import ISSUER, JwksServer, SigningKey
from tests.support.waiting import wait_until

MIN_REFETCH_SECONDS = 5  # JWT_JWKS_MIN_REFETCH of the test server
SLACK_SECONDS = 5.0  # a loaded two-core machine
REQUESTS = 24  # each on a new connection, so both workers answer some

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.REDIS_URL, reason="workers share JWKS through Redis; set REDIS_URL"
    ),
]


def _status(port: int, token: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(
            "GET", "/svc/echo", headers={"Authorization": f"Bearer {token}", "Connection": "close"}
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _statuses(port: int, token: str) -> list[int]:
    return [_status(port, token) for _ in range(REQUESTS)]


@pytest.fixture
def idp() -> Iterator[JwksServer]:
    with JwksServer() as server:
        jwks_forget(server.url)
        yield server
        jwks_forget(server.url)


@pytest.fixture
def gateway(idp: JwksServer, make_route, upstream) -> Iterator[GatewayServer]:
    protect(make_route("/svc/**", upstream.url), roles=("developer",))
    server = GatewayServer(
        GATEWAY_WORKERS="2",
        JWT_JWKS_URL=idp.url,
        JWT_ISSUER=ISSUER,
        JWT_ROLES_CLAIM="realm_access.roles",
        JWT_JWKS_MIN_REFETCH=f"{MIN_REFETCH_SECONDS}s",
        JWT_JWKS_CACHE_TTL="10m",
    )
    with server:
        yield server


def test_removed_key_is_rejected_by_every_worker_after_one_deployment_wide_refetch(idp, gateway):
    k1, k2 = SigningKey("k1"), SigningKey("k2")
    idp.publish(k1.jwk)
    started = time.monotonic()

    # Both workers verify k1 (and remember the verified token); unknown kids on both workers
    # ask for at most one fetch per JWT_JWKS_MIN_REFETCH for the whole deployment.
    old_token = k1.token()
    assert _statuses(gateway.port, old_token) == [200] * REQUESTS
    strangers = [SigningKey(f"stranger-{n}", kind="EC").token() for n in range(REQUESTS)]
    assert all(_status(gateway.port, token) == 401 for token in strangers)
    # The claim window is real Redis expiry in the gateway's processes (no clock to inject
    # there). The allowance grows with the time the requests took, so load can only loosen it.
    windows = int((time.monotonic() - started) // MIN_REFETCH_SECONDS) + 1
    assert 1 <= idp.fetches <= windows, (idp.fetches, windows)

    # The issuer withdraws k1 and signs with k2. Once the bound since the last fetch has
    # passed, k2's first token makes one worker refetch.
    idp.publish(k2.jwk)
    fetches_before = idp.fetches
    # Past the refetch window (a real sleep is a lower bound: load only lengthens it).
    time.sleep(MIN_REFETCH_SECONDS + 0.5)
    new_token = k2.token()
    wait_until(
        lambda: _status(gateway.port, new_token) == 200,
        timeout=MIN_REFETCH_SECONDS + 2 * SLACK_SECONDS,
        interval=0.2,
        message=gateway.log,
    )
    assert idp.fetches > fetches_before

    # Within the bound of that refetch (each worker looks at the shared store at least once a
    # second), k1 is refused by every worker, also for the very token they verified and
    # remembered before; k2 passes everywhere. Polled: how soon is not measured.
    last: list[int] = []

    def old_token_refused_everywhere() -> bool:
        last[:] = _statuses(gateway.port, old_token)
        return last == [401] * REQUESTS

    wait_until(
        old_token_refused_everywhere,
        timeout=MIN_REFETCH_SECONDS + 2 * SLACK_SECONDS,
        interval=0.2,
        message=lambda: f"old token still accepted: {last}",
    )
    assert _statuses(gateway.port, k1.token()) == [401] * REQUESTS
    assert _statuses(gateway.port, new_token) == [200] * REQUESTS

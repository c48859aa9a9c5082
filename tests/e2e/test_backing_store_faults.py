"""PostgreSQL or Redis made unreachable under a running gunicorn gateway, then given back.

Each store is reached through a loopback TCP forwarder the test cuts: the gateway keeps
proxying from its last compiled table, management writes answer 503 database_unavailable, and
breaker state falls back to per-process; both recover without a restart.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection

from routing.models import Route, Service
from tests.support import gateway_server as gateway_support
from tests.support.gateway_server import GatewayServer
from tests.support.tcp_cutter import TcpCutter

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TOKEN = "e2e-registration-token"


def _call(method: str, url: str, body: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _console_get(base: str, session_id: str) -> tuple[int, dict[str, str], bytes]:
    """A staff-only console page that needs no static files: admin's JavaScript catalog."""
    request = urllib.request.Request(f"{base}/admin/jsi18n/")
    request.add_header("Cookie", f"sessionid={session_id}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _staff_session() -> str:
    """The session id of a logged-in superuser, stored in the shared database."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("dbcut-admin", password="long-pass-1")
    browser = Client()
    browser.force_login(user)
    return str(browser.cookies["sessionid"].value)


def _wait_for(predicate, timeout: float = 8.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (SQLite cannot be cut off)"
)
def test_gateway_serves_from_its_last_table_while_postgres_is_unreachable(upstream):
    service = Service.objects.create(name="dbcut", url=upstream.url)
    Route.objects.create(path="/dbcut/**", service=service, authentication="none")
    db = urlsplit(gateway_support.test_database_url())
    with (
        TcpCutter(db.hostname or "127.0.0.1", db.port or 5432) as cutter,
        GatewayServer(
            DATABASE_URL=f"postgres://{db.username}@127.0.0.1:{cutter.port}{db.path}",
            GATEWAY_REGISTRATION_TOKEN=TOKEN,
            LOG_LEVEL="INFO",
        ) as gateway,
    ):
        # Both workers compile their table as they load; the cut comes after that.
        assert _wait_for(lambda: gateway.log().count("compiled route table") >= 2), gateway.log()
        assert _call("GET", f"{gateway.url}/dbcut/echo")[0] == 200
        session_id = _staff_session()
        assert _console_get(gateway.url, session_id)[0] == 200
        cutter.cut()
        # A config change makes every worker try to recompile: the database is gone, so they
        # keep the table they have.
        Route.objects.create(path="/dbcut-new/**", service=service, authentication="none")
        time.sleep(0.5)
        statuses = [_call("GET", f"{gateway.url}/dbcut/echo")[0] for _ in range(10)]
        assert statuses == [200] * 10, gateway.log()
        status, headers, body = _call(
            "POST",
            f"{gateway.url}/api/gateway/registry/register",
            {"service": "dbcut-reg", "url": upstream.url},
        )
        assert status == 503, body
        assert headers["Content-Type"] == "application/problem+json"
        assert json.loads(body)["code"] == "database_unavailable"
        assert headers["Retry-After"]
        status, headers, body = _console_get(gateway.url, session_id)
        assert status == 503, body
        assert headers["Content-Type"] == "application/problem+json"
        assert json.loads(body)["code"] == "database_unavailable"
        cutter.restore()
        assert _wait_for(lambda: _call("GET", f"{gateway.url}/dbcut-new/echo")[0] == 200), (
            gateway.log()
        )
        status, _, body = _call(
            "POST",
            f"{gateway.url}/api/gateway/registry/register",
            {"service": "dbcut-reg", "url": upstream.url},
        )
        assert status == 201, body
        assert _console_get(gateway.url, session_id)[0] == 200


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis")
def test_breakers_fall_back_to_per_process_while_redis_is_unreachable(upstream):
    from routing.target_state import resilience_state

    service = Service.objects.create(name="rcut", url=upstream.url)
    Route.objects.create(
        path="/rcut/**",
        service=service,
        authentication="none",
        circuit_breaker_threshold=2,
        circuit_breaker_timeout_ms=60_000,
    )
    Route.objects.create(path="/rcut-plain/**", service=service, authentication="none")
    redis = urlsplit(str(settings.REDIS_URL))
    with (
        TcpCutter(redis.hostname or "127.0.0.1", redis.port or 6379) as cutter,
        GatewayServer(
            REDIS_URL=f"redis://127.0.0.1:{cutter.port}{redis.path}",
            GATEWAY_WORKERS="1",
            GATEWAY_STATE_POLL="100ms",
        ) as gateway,
    ):
        assert _call("GET", f"{gateway.url}/rcut/echo")[0] == 200
        cutter.cut()
        assert [_call("GET", f"{gateway.url}/rcut/echo")[0] for _ in range(5)] == [200] * 5
        assert _call("GET", f"{gateway.url}/rcut-plain/echo")[0] == 200
        assert [_call("GET", f"{gateway.url}/rcut/status/503")[0] for _ in range(2)] == [503] * 2
        seen = upstream.count()
        status, _, body = _call("GET", f"{gateway.url}/rcut/echo")
        assert status == 503 and json.loads(body)["code"] == "circuit_open", gateway.log()
        assert upstream.count() == seen  # the per-process breaker failed fast without Redis
        cutter.restore()
        # Shared state is read again: a verdict published through Redis reaches the gateway.
        key = f"rcut {upstream.url}"
        resilience_state.publish_health({key: (False, "marked down by the test")}, ttl_ms=30_000)
        assert _wait_for(lambda: _call("GET", f"{gateway.url}/rcut-plain/echo")[0] == 503), (
            gateway.log()
        )

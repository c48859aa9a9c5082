"""Fixtures shared by the whole suite: a real upstream server and route factories."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_project.redis import redis_client, redis_key
from quotas.store import MemoryStore, RedisStore, use_store
from routing import clock
from routing.table import route_tables
from routing.target_state import resilience_state
from tests.support.clock import FrozenClock
from tests.support.upstream import UpstreamServer


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[UpstreamServer]:
    """One real HTTP upstream on loopback for the whole session."""
    with UpstreamServer("upstream-a") as server:
        yield server


@pytest.fixture
def upstream(upstream_server: UpstreamServer) -> UpstreamServer:
    """The session's upstream, with its record of received requests cleared."""
    upstream_server.reset()
    return upstream_server


@pytest.fixture(autouse=True)
def fresh_route_table() -> Iterator[None]:
    """Every test compiles its own route table from its own database state."""
    route_tables.reset()
    yield
    route_tables.reset()


@pytest.fixture(autouse=True)
def fresh_resilience_state() -> Iterator[None]:
    """No test inherits another's target health, ejections, leases or open circuits."""
    from routing.upstream import upstream_client

    client = upstream_client()
    resilience_state.reset()
    client.breakers.reset()
    yield
    resilience_state.reset()
    client.breakers.reset()


@pytest.fixture
def frozen_clock() -> Iterator[FrozenClock]:
    """Routing's wall clock (breakers, leases, ejections, check-ins) stopped at the real now.

    It moves only by `frozen_clock.advance(seconds)`, so a test crosses an open-until or a
    lease end exactly instead of sleeping past it.
    """
    frozen = FrozenClock(time.time())
    clock.use_source(frozen)
    yield frozen
    clock.use_source(None)


@pytest.fixture(scope="session", autouse=True)
def quick_flush() -> Iterator[None]:
    """On PostgreSQL, transactional tests are cleaned up with DELETE (tests/support/quick_flush.py)."""
    from django.db import connections

    if connections["default"].vendor != "postgresql":
        yield
        return
    from django.db.backends.postgresql.operations import DatabaseOperations

    from tests.support.quick_flush import deleting_sql_flush

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            DatabaseOperations, "sql_flush", deleting_sql_flush(DatabaseOperations.sql_flush)
        )
        yield


@pytest.fixture(scope="session", autouse=True)
def clean_redis_namespace() -> Iterator[None]:
    """Remove this run's Redis keys at the end of the session."""
    yield
    client = redis_client()
    if client is not None:
        keys = list(client.scan_iter(redis_key("*")))
        if keys:
            client.delete(*keys)


@pytest.fixture(autouse=True)
def fresh_limit_store() -> Iterator[Any]:
    """Every test starts with empty limit counters (route ids repeat between tests)."""
    client = redis_client()
    prefix = redis_key(f"t{uuid.uuid4().hex[:8]}:")
    store = RedisStore(client, prefix=prefix) if client is not None else MemoryStore()
    use_store(store)
    yield store
    use_store(None)
    if client is not None:
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)


@pytest.fixture
def make_route(db: Any) -> Any:
    """Factory: `make_route(path, url, **route_fields)` creates a service and a route."""
    from routing.models import Route, Service

    counter = {"n": 0}

    def factory(path: str, url: str, *, service: str | None = None, **fields: Any) -> Route:
        counter["n"] += 1
        name = service or f"svc-{counter['n']}"
        svc, _ = Service.objects.get_or_create(name=name, defaults={"url": url})
        fields.setdefault("authentication", Route.Authentication.NONE)
        route = Route.objects.create(path=path, service=svc, **fields)
        route_tables.reset()
        return route

    return factory


@pytest.fixture
def gateway() -> Any:
    """A client for proxied traffic: requests go through the production WSGI callable."""
    from tests.support.wsgi_client import GatewayWSGIClient

    return GatewayWSGIClient()

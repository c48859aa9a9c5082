"""Fixtures for limit tests: stores (in-process and real Redis), a settable clock, consumers."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings

from accounts.identity import Principal
from gateway_project.redis import redis_client, redis_key
from quotas.store import MemoryStore, RedisStore
from routing.pipeline import Authenticate, RequestContext
from tests.support.clock import FrozenClock
from tests.support.gateway_server import free_port
from tests.support.tls import self_signed_certificate

needs_redis = pytest.mark.skipif(
    not settings.REDIS_URL, reason="needs a real Redis: set REDIS_URL (CI does)"
)
needs_redis_server = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="needs the redis-server binary to start a throwaway Redis",
)


def clock_at(at: datetime) -> FrozenClock:
    """A settable clock (seconds since the epoch) for stores under test, starting at `at`."""
    return FrozenClock(at.timestamp())


@pytest.fixture
def clock() -> FrozenClock:
    """A clock at a fixed, arbitrary instant (mid-day, mid-month, UTC)."""
    return clock_at(datetime(2027, 3, 10, 12, 0, 0, tzinfo=UTC))


def _private_prefix() -> str:
    return redis_key(f"t{uuid.uuid4().hex[:8]}:")


def _drop(client: Any, prefix: str) -> None:
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
def store_factory(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Makes stores of one kind (in-process, or real Redis with a private key prefix)."""
    prefixes: list[str] = []

    def make(clock: Any = None) -> Any:
        if request.param == "memory":
            return MemoryStore(clock=clock) if clock else MemoryStore()
        prefix = _private_prefix()
        prefixes.append(prefix)
        return RedisStore(redis_client(), clock=clock, prefix=prefix)

    make.kind = request.param  # type: ignore[attr-defined]
    yield make
    for prefix in prefixes:
        _drop(redis_client(), prefix)


def principal_from_test_header(self: object, ctx: RequestContext) -> None:
    """TEST ONLY, the authenticate step's `run`: `X-Test-Consumer: kind:id:username:roles`."""
    raw = ctx.meta.get("HTTP_X_TEST_CONSUMER")
    if raw:
        kind, identifier, username, roles = [*raw.split(":"), ""][:4]
        ctx.principal = Principal(
            id=identifier,
            username=username,
            roles=frozenset(role for role in roles.split(",") if role),
            permissions=frozenset(),
            kind=kind,
            credential="jwt",
        )


@pytest.fixture
def consumers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let tests name their consumer with the X-Test-Consumer header."""
    monkeypatch.setattr(Authenticate, "run", principal_from_test_header)


def consumer_header(kind: str, identifier: str, username: str, roles: str = "") -> str:
    """The X-Test-Consumer value for a consumer."""
    return f"{kind}:{identifier}:{username}:{roles}"


class ThrowawayRedis:
    """A redis-server on a free loopback port, with no persistence, that a test may kill."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.port = free_port()
        self.tls = tls  # (certificate, key): serve TLS only (rediss://)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ThrowawayRedis:
        """Start it and wait until it answers PING."""
        if self.tls is None:
            listen = ["--port", str(self.port)]
        else:
            cert, key = self.tls
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert)]
            listen += ["--tls-key-file", str(key), "--tls-ca-cert-file", str(cert)]
            listen += ["--tls-auth-clients", "no"]
        self.process = subprocess.Popen(
            [
                "redis-server",
                *listen,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the throwaway redis-server did not start")

    def client(self) -> redis.Redis:
        """A client built like the gateway's own: short timeouts, a pool without retries."""
        timeouts: dict[str, Any] = {"socket_timeout": 0.25, "socket_connect_timeout": 0.25}
        if self.tls is not None:
            url = f"rediss://127.0.0.1:{self.port}/0"
            pool = redis.ConnectionPool.from_url(url, ssl_ca_certs=str(self.tls[0]), **timeouts)
        else:
            pool = redis.ConnectionPool(host="127.0.0.1", port=self.port, **timeouts)
        return redis.Redis(connection_pool=pool)

    def stop(self) -> None:
        """Kill it (SIGKILL: as abrupt as a crash) and wait for it to be gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    """A private redis-server for fault tests; killed at the end whatever happens."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server binary to start a throwaway Redis")
    server = ThrowawayRedis().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def throwaway_tls_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    """A private redis-server speaking only TLS, with a self-signed certificate."""
    if shutil.which("redis-server") is None or shutil.which("openssl") is None:
        pytest.skip("needs the redis-server and openssl commands")
    server = ThrowawayRedis(tls=self_signed_certificate(tmp_path)).start()
    try:
        yield server
    finally:
        server.stop()

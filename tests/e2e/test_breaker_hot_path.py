"""The cost of a configured breaker on the hot path, counted by a throwaway Redis server.

In the closed state a request makes no Redis call of its own: each process re-reads the shared
state once per GATEWAY_STATE_POLL (one pipelined round trip), whatever the request rate.
"""

from __future__ import annotations

import http.client
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis as redis_lib

from routing.models import Route, Service
from tests.support.gateway_server import GatewayServer, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REQUESTS = 300


@pytest.fixture
def throwaway_redis() -> Iterator[redis_lib.Redis]:
    """A private redis-server on a free loopback port, so its command counts are ours alone."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = redis_lib.Redis(port=port)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis_lib.ConnectionError:
                time.sleep(0.05)
        yield client
    finally:
        process.terminate()
        process.wait(10)


def _commands(client: redis_lib.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def test_closed_breaker_makes_no_redis_call_per_request(upstream, throwaway_redis):
    service = Service.objects.create(name="hot", url=upstream.url)
    Route.objects.create(
        path="/hot/**",
        service=service,
        authentication="none",
        circuit_breaker_threshold=5,
        circuit_breaker_timeout_ms=30_000,
    )
    Route.objects.create(path="/plain/**", service=service, authentication="none")
    port = throwaway_redis.connection_pool.connection_kwargs["port"]
    with GatewayServer(
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        GATEWAY_WORKERS="1",
        GATEWAY_STATE_POLL="500ms",
        GATEWAY_CONFIG_POLL="1s",
    ) as gateway:
        connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        connection.request("GET", "/hot/echo")
        assert connection.getresponse().read() and True
        throwaway_redis.config_resetstat()
        started = time.monotonic()
        timings: dict[str, list[float]] = {"/hot/echo": [], "/plain/echo": []}
        for _ in range(REQUESTS):
            for path, samples in timings.items():  # interleaved: same conditions for both
                begin = time.perf_counter()
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                samples.append(time.perf_counter() - begin)
                assert response.status == 200
        elapsed = time.monotonic() - started
        commands = _commands(throwaway_redis)
        connection.close()
    polls = elapsed / 0.5 + 2
    medians = {path: statistics.median(samples) * 1000 for path, samples in timings.items()}
    print(
        f"\n{REQUESTS} requests per route in {elapsed:.2f}s; Redis commands: {commands}; "
        f"p50 ms with breaker {medians['/hot/echo']:.3f}, without {medians['/plain/echo']:.3f}"
    )
    assert commands.get("evalsha", 0) + commands.get("eval", 0) == 0  # no breaker writes
    assert commands.get("hset", 0) == 0
    # The periodic state read: 5 HGETALLs in one pipeline per poll, not per request.
    assert commands.get("hgetall", 0) <= 5 * polls
    assert commands.get("hgetall", 0) < REQUESTS / 2
    assert commands.get("get", 0) <= elapsed / 1.0 + 2  # the config version poll, same story

"""A gateway that finds its Redis through Sentinel (REDIS_SENTINELS), with a real sentinel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings

from routing.models import Route, Service
from tests.support.gateway_server import GatewayServer, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REDIS_SERVER = shutil.which("redis-server")


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def sentinel(tmp_path) -> Iterator[tuple[str, int, int]]:
    """A sentinel on loopback monitoring the test Redis: (master name, sentinel port, db)."""
    if not settings.REDIS_URL:
        pytest.skip("Sentinel monitors a real Redis: set REDIS_URL")
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    target = urlsplit(settings.REDIS_URL)
    name, port = f"gwtest{os.getpid()}", free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {tmp_path}\n"
        f"sentinel monitor {name} {target.hostname} {target.port or 6379} 1\n"
        f"sentinel down-after-milliseconds {name} 60000\n"
    )
    process = subprocess.Popen(
        [REDIS_SERVER, str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.sentinel_get_master_addr_by_name(name):
                    break
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the sentinel did not start"
            time.sleep(0.05)
        yield name, port, int((target.path or "/0").lstrip("/") or 0)
    finally:
        process.terminate()
        process.wait(10)


def test_gateway_reaches_redis_through_sentinel_for_config_changes_and_limits(sentinel, upstream):
    name, port, db = sentinel
    with GatewayServer(
        GATEWAY_WORKERS="1", REDIS_URL=f"redis://{name}/{db}", REDIS_SENTINELS=f"127.0.0.1:{port}"
    ) as node:
        status, body = _get(f"{node.url}/health/ready")
        assert status == 200, body
        assert body["checks"]["redis"] == "ok"

        # The config version published to the primary reaches the node through the sentinel.
        service = Service.objects.create(name="sentinel", url=upstream.url)
        Route.objects.create(path="/api/v1/sentinel/**", service=service, authentication="none")
        deadline = time.monotonic() + 5
        status, body = _get(f"{node.url}/api/v1/sentinel/echo")
        while status != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            status, body = _get(f"{node.url}/api/v1/sentinel/echo")
        assert status == 200, node.log()
        assert body["path"] == "/api/v1/sentinel/echo"

        # Rate limits run their script on the primary the sentinel names.
        Route.objects.create(
            path="/api/v1/limited/**",
            service=service,
            authentication="none",
            rate_limit_requests=2,
            rate_limit_period="minute",
        )
        deadline = time.monotonic() + 5
        while _get(f"{node.url}/api/v1/limited/echo")[0] == 404:
            assert time.monotonic() < deadline, node.log()
            time.sleep(0.05)
        assert _get(f"{node.url}/api/v1/limited/echo")[0] == 200
        assert _get(f"{node.url}/api/v1/limited/echo")[0] == 429

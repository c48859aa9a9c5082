"""Two gateway nodes sharing one PostgreSQL and one Redis behave as one gateway."""

from __future__ import annotations

import functools
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from accounts.models import User
from routing.models import Route, Service
from tests.support.console import ConsoleSession
from tests.support.gateway_server import ROOT, GatewayServer
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

POLL_SECONDS = 0.2  # GATEWAY_CONFIG_POLL of the test servers (tests/support/gateway_server.py)
# How long node B may take to serve a change here: a verdict on "it arrives", far above the poll
# interval on a loaded machine. The poll bound itself is checked on a frozen clock in
# tests/routing/test_config_version.py.
PROPAGATION_BOUND_SECONDS = 15.0
REQUESTS = 200
THREADS = 4
UPSTREAM_MS = 50


def _get(base_url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _serves(base_url: str, path: str) -> bool:
    return _get(base_url, path)[0] == 200


@pytest.fixture(scope="module")
def collected_static() -> None:
    """The console's static files, collected as `make run` and the image build do."""
    if (ROOT / "var" / "static" / "staticfiles.json").exists():
        return
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "gateway_project.settings"},
        check=True,
        timeout=120,
    )


@pytest.fixture
def nodes(collected_static):
    """Node A and node B: two gunicorn gateways sharing the test database and Redis.

    Without REDIS_URL (the embedded SQLite run) they share the database file and poll the
    config version there; production nodes share PostgreSQL and Redis.
    """
    with GatewayServer() as node_a, GatewayServer() as node_b:
        yield node_a, node_b


def test_route_added_in_node_a_console_is_served_by_node_b_within_the_poll_interval(
    nodes, upstream
):
    node_a, node_b = nodes
    # Hashed as the servers hash (the test settings' fast MD5 hasher is not theirs).
    hasher = PBKDF2PasswordHasher()
    User.objects.create(
        username="ops",
        is_staff=True,
        is_superuser=True,
        password=hasher.encode("multi-node-console-pw-1", hasher.salt()),
    )
    assert _get(node_b.url, "/api/v1/multi/echo")[0] == 404  # B compiled its table already

    console = ConsoleSession(node_a.url)
    console.login("ops", "multi-node-console-pw-1")
    response = console.add(
        "routing/service",
        {"name": "multi", "url": upstream.url, "targets-TOTAL_FORMS": "0"},
    )
    assert response.status_code == 302, response.text[:3000]
    service = Service.objects.get(name="multi")
    response = console.add(
        "routing/route",
        {"path": "/api/v1/multi/**", "service": service.pk, "authentication": "none"},
    )
    assert response.status_code == 302, response.text[:3000]

    def served_by_b() -> tuple[int, dict[str, str], bytes] | None:
        answer = _get(node_b.url, "/api/v1/multi/echo")
        return answer if answer[0] == 200 else None

    _, headers, body = wait_until(
        served_by_b,
        timeout=PROPAGATION_BOUND_SECONDS,
        interval=0.02,
        message="node B never served the route saved on node A",
    )
    assert json.loads(body)["path"] == "/api/v1/multi/echo"
    assert headers["X-Upstream"] == upstream.name

    # Once every worker's poll interval has passed, every worker of both nodes serves it (a
    # worker checks the version on its next request after the interval: real time passing is
    # all that is needed, so a loaded machine only makes this wait longer, never too short).
    time.sleep(POLL_SECONDS * 2)
    for node in (node_a, node_b):
        for _ in range(10):
            assert _get(node.url, "/api/v1/multi/echo")[0] == 200


@dataclass
class _Stream:
    """Outcome of every request of the stream, by request number."""

    served_by_a: set[int] = field(default_factory=set)
    refused_by_a: set[int] = field(default_factory=set)
    served_by_b: set[int] = field(default_factory=set)
    lost: dict[int, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_number: int = 0

    def take(self) -> int | None:
        """The next request number to send, or None when all are taken."""
        with self.lock:
            if self.next_number >= REQUESTS:
                return None
            self.next_number += 1
            return self.next_number - 1

    def record(self, bucket: set[int], number: int) -> None:
        """Put request `number` into one of the outcome sets."""
        with self.lock:
            bucket.add(number)

    def lose(self, number: int, reason: str) -> None:
        """Record request `number` as lost, with why."""
        with self.lock:
            self.lost[number] = reason


def _request(port: int, number: int) -> tuple[int, bytes]:
    """One request on a fresh connection; ConnectionRefusedError if nobody accepts it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.sock = sock
    try:
        connection.request(
            "GET", f"/api/v1/stream/slow/{UPSTREAM_MS}/n{number}", headers={"Connection": "close"}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _served(status: int, body: bytes, number: int) -> bool:
    return status == 200 and json.loads(body)["path"].endswith(f"/n{number}")


def _client(stream: _Stream, node_a: GatewayServer, node_b: GatewayServer) -> None:
    """Send requests to node A; like a load balancer, retry a refused connection on node B."""
    while (number := stream.take()) is not None:
        try:
            status, body = _request(node_a.port, number)
        except ConnectionRefusedError:
            stream.record(stream.refused_by_a, number)
            try:
                status, body = _request(node_b.port, number)
            except OSError as error:
                stream.lose(number, f"node B: {error!r}")
                continue
            if _served(status, body, number):
                stream.record(stream.served_by_b, number)
            else:
                stream.lose(number, f"node B answered {status}")
            continue
        except OSError as error:  # accepted by A, then dropped: a lost request
            stream.lose(number, f"node A: {error!r}")
            continue
        if _served(status, body, number):
            stream.record(stream.served_by_a, number)
        else:
            stream.lose(number, f"node A answered {status} {body[:200]!r}")


def test_config_change_and_sigterm_during_a_stream_of_requests_lose_none_of_them(
    collected_static, upstream
):
    # Node A runs two workers: both must hand over their queued connections when stopping.
    with GatewayServer() as node_a, GatewayServer(GATEWAY_WORKERS="1") as node_b:
        _stream_through_a_sigterm(node_a, node_b, upstream)


def _stream_through_a_sigterm(node_a: GatewayServer, node_b: GatewayServer, upstream) -> None:
    service = Service.objects.create(name="stream", url=upstream.url)
    Route.objects.create(path="/api/v1/stream/**", service=service, authentication="none")
    for node in (node_b, node_a):
        wait_until(
            functools.partial(_serves, node.url, "/api/v1/stream/slow/0/warm"),
            timeout=PROPAGATION_BOUND_SECONDS,
            message="route never reached the nodes",
        )
    # One worker answered; the other checks the version at its next request once a poll
    # interval (200 ms) has passed since its last check. Past that bound every worker has it.
    time.sleep(2 * POLL_SECONDS)
    upstream.reset()

    stream = _Stream()
    clients = [
        threading.Thread(target=_client, args=(stream, node_a, node_b), daemon=True)
        for _ in range(THREADS)
    ]
    for client in clients:
        client.start()
    # Progress bounds only (generous: 50 ms requests on four threads), polled, never timed.
    wait_until(lambda: len(stream.served_by_a) >= REQUESTS // 8, timeout=60, interval=0.01)
    # A config change mid-stream: every worker of both nodes recompiles while serving.
    Route.objects.create(path="/api/v1/other/**", service=service, authentication="none")
    wait_until(lambda: len(stream.served_by_a) >= REQUESTS // 4, timeout=60, interval=0.01)
    assert node_a.process is not None
    node_a.process.send_signal(signal.SIGTERM)
    # Stopping must not wait out gunicorn's 30 s graceful timeout (nothing in flight is that
    # slow): a stop past this bound raises TimeoutExpired. How fast it stops is not measured.
    exit_status = node_a.process.wait(20)
    for client in clients:
        client.join(30)
    assert not any(client.is_alive() for client in clients)

    assert stream.lost == {}, node_a.log()
    assert stream.served_by_a | stream.served_by_b == set(range(REQUESTS))
    assert stream.refused_by_a == stream.served_by_b
    # The SIGTERM really fell mid-stream: node A served some, then refused the rest.
    assert len(stream.served_by_a) >= REQUESTS // 4
    assert stream.refused_by_a
    assert exit_status == 0, node_a.log()
    # Node B took the mid-stream change; A served it until it stopped.
    assert _get(node_b.url, "/api/v1/other/echo")[0] == 200
    # Every request reached the upstream exactly once: none lost, none sent twice.
    numbers = [r.path.rsplit("/n", 1)[1] for r in upstream.received if "/n" in r.path]
    assert sorted(numbers, key=int) == [str(n) for n in range(REQUESTS)]

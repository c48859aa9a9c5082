"""SIGTERM: readiness fails first, the node keeps serving while it drains, then stops cleanly."""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time

import pytest

from routing.models import Route, Service
from tests.support.gateway_server import GatewayServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DRAIN_SECONDS = 1.5


def _get(port: int, path: str, timeout: float = 10) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body else {}
    finally:
        connection.close()


def _route_to(upstream) -> None:
    service = Service.objects.create(name="graceful", url=upstream.url)
    Route.objects.create(path="/api/v1/graceful/**", service=service, authentication="none")


def test_sigterm_fails_readiness_serves_through_the_drain_then_refuses_and_exits(upstream):
    _route_to(upstream)
    with GatewayServer(GATEWAY_WORKERS="1", GATEWAY_DRAIN=f"{int(DRAIN_SECONDS * 1000)}ms") as node:
        assert _get(node.port, "/health/ready")[0] == 200
        in_flight: dict[str, object] = {}

        def slow_request() -> None:
            in_flight["answer"] = _get(node.port, "/api/v1/graceful/slow/2500/in-flight")

        slow = threading.Thread(target=slow_request, daemon=True)
        slow.start()
        time.sleep(0.3)  # the slow request is in the upstream now
        assert node.process is not None
        node.process.send_signal(signal.SIGTERM)
        terminated = time.monotonic()

        # Draining: not ready, but alive and still serving new requests.
        status, body = _get(node.port, "/health/ready")
        while status == 200 and time.monotonic() - terminated < DRAIN_SECONDS / 2:
            time.sleep(0.02)
            status, body = _get(node.port, "/health/ready")
        assert (status, body["code"]) == (503, "draining")
        assert _get(node.port, "/health") == (200, {"status": "ok"})
        assert _get(node.port, "/api/v1/graceful/echo/during-drain")[0] == 200
        assert time.monotonic() - terminated < DRAIN_SECONDS, "the checks outlasted the drain"

        # After the drain: new connections are refused while the in-flight request finishes.
        refused = False
        while not refused and time.monotonic() - terminated < DRAIN_SECONDS + 5:
            try:
                _get(node.port, "/health", timeout=1)
                time.sleep(0.05)
            except ConnectionRefusedError:
                refused = True
        assert refused, "the node still accepts connections after the drain"
        exit_status = node.process.wait(30)
        slow.join(10)
        assert exit_status == 0, node.log()
        status, body = in_flight["answer"]  # type: ignore[misc]
        assert status == 200 and body["path"].endswith("/in-flight")


def test_graceful_timeout_bounds_how_long_a_stopping_node_waits(upstream):
    _route_to(upstream)
    with GatewayServer(GATEWAY_WORKERS="1", GATEWAY_GRACEFUL_TIMEOUT="1") as node:
        outcome: dict[str, object] = {}

        def stuck_request() -> None:
            try:
                outcome["answer"] = _get(node.port, "/api/v1/graceful/slow/20000/stuck", 30)
            except OSError as error:
                outcome["error"] = error

        stuck = threading.Thread(target=stuck_request, daemon=True)
        stuck.start()
        time.sleep(0.3)
        assert node.process is not None
        node.process.send_signal(signal.SIGTERM)
        terminated = time.monotonic()
        node.process.wait(15)
        stopped = time.monotonic() - terminated
        stuck.join(15)
    # gunicorn waits GATEWAY_GRACEFUL_TIMEOUT (1 s) for the 20 s request, then kills the worker.
    assert 0.9 <= stopped < 5, f"stopped after {stopped:.1f}s"
    assert "error" in outcome, outcome

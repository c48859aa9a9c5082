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
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Real time in a real gunicorn (its clock cannot be injected), so the drain is long enough for
# the checks below to run inside it on a loaded machine; the in-flight request outlasts it.
DRAIN_SECONDS = 5.0
IN_FLIGHT_MS = int(DRAIN_SECONDS * 1000) + 3000


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
            path = f"/api/v1/graceful/slow/{IN_FLIGHT_MS}/in-flight"
            in_flight["answer"] = _get(node.port, path, timeout=30)

        slow = threading.Thread(target=slow_request, daemon=True)
        slow.start()
        wait_until(
            lambda: upstream.count("/api/v1/graceful/slow"),
            message="the slow request never reached the upstream",
        )
        assert node.process is not None
        node.process.send_signal(signal.SIGTERM)

        # Draining: not ready, but alive and still serving new requests. (Were the drain over
        # before these checks, they would be refused and fail; so they ran inside it.)
        wait_until(
            lambda: _get(node.port, "/health/ready")[0] == 503,
            timeout=DRAIN_SECONDS / 2,
            interval=0.02,
            message="readiness did not fail on SIGTERM",
        )
        status, body = _get(node.port, "/health/ready")
        assert (status, body["code"]) == (503, "draining")
        assert _get(node.port, "/health") == (200, {"status": "ok"})
        assert _get(node.port, "/api/v1/graceful/echo/during-drain")[0] == 200

        # After the drain: new connections are refused while the in-flight request finishes.
        def refused() -> bool:
            try:
                _get(node.port, "/health", timeout=1)
            except ConnectionRefusedError:
                return True
            return False

        wait_until(
            refused,
            timeout=DRAIN_SECONDS + 10,
            message="the node still accepts connections after the drain",
        )
        assert slow.is_alive(), "the in-flight request was answered before the drain ended"
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
                outcome["answer"] = _get(node.port, "/api/v1/graceful/slow/30000/stuck", 60)
            except OSError as error:
                outcome["error"] = error

        stuck = threading.Thread(target=stuck_request, daemon=True)
        stuck.start()
        wait_until(
            lambda: upstream.count("/api/v1/graceful/slow"),
            message="the stuck request never reached the upstream",
        )
        assert node.process is not None
        node.process.send_signal(signal.SIGTERM)
        terminated = time.monotonic()
        # Waiting for the 30 s request would overrun this 20 s bound (TimeoutExpired): the
        # graceful timeout (1 s) is what ended the stop. Generous for a loaded machine.
        node.process.wait(20)
        stopped = time.monotonic() - terminated
        stuck.join(15)
    # A lower bound only (load makes it later, never sooner): gunicorn did wait its graceful
    # timeout for the request before killing the worker.
    assert stopped >= 0.9, f"stopped after {stopped:.1f}s, without waiting for the request"
    assert "error" in outcome, outcome

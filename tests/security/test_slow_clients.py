"""Slow clients (slowloris) cannot hold every worker thread: reads are time-bounded."""

from __future__ import annotations

import socket
import time
from contextlib import ExitStack

import pytest

from tests.security.wire import get, raw_exchange, status_of
from tests.support.gateway_server import GatewayServer

# django_db makes pytest-django create the test database the gateway subprocess shares.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

THREADS = 2
SLOW_CLIENTS = 4  # twice the threads: without a bound, every thread would stay stuck
CLIENT_TIMEOUT_S = 1.0


def test_normal_request_is_served_while_slow_clients_stall(django_db_setup):
    with (
        GatewayServer(
            GATEWAY_WORKERS="1",
            GATEWAY_THREADS=str(THREADS),
            GATEWAY_CLIENT_TIMEOUT=f"{int(CLIENT_TIMEOUT_S * 1000)}ms",
        ) as server,
        ExitStack() as stack,
    ):
        for i in range(SLOW_CLIENTS):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", server.port)))
            if i % 2:  # half send part of a request and stall; half send nothing at all
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        time.sleep(0.2)  # let the worker take them all
        started = time.monotonic()
        answer = raw_exchange(server.port, get("/health"), timeout=15)
        elapsed = time.monotonic() - started
    assert status_of(answer) == 200
    # Each stalled client holds a thread for at most CLIENT_TIMEOUT_S, two threads in turn.
    # (the ones sending nothing are deferred to the poller after the same bound), plus slack.
    bound = 2 * SLOW_CLIENTS / THREADS * CLIENT_TIMEOUT_S + 2
    assert elapsed < bound, f"served after {elapsed:.1f}s (bound {bound:.1f}s)"

"""Slow clients (slowloris) cannot hold worker threads: heads are read by the worker's loop with
a total deadline, and reads in a request thread are time-bounded."""

from __future__ import annotations

import resource
import socket
import time
from contextlib import ExitStack

import pytest

from tests.security.wire import get, header_of, problem_of, raw_exchange, status_of
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
        # Only orders the slow clients first: were it too short on a loaded machine, the test
        # would be weaker that run, never red.
        time.sleep(0.2)
        # Stalled clients never send more: without a bound they would keep both threads for
        # ever and this request would never be answered. raw_exchange's 15 s read timeout is
        # the "ever" (each stall is bounded by CLIENT_TIMEOUT_S = 1 s); nothing is timed.
        answer = raw_exchange(server.port, get("/health"), timeout=15)
    assert status_of(answer) == 200


# --- the serving model: heads are read by the worker's event loop, not by request threads ----

SLOW_HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def _open_files_for(count: int) -> None:
    """Raise this process's soft open-files limit for `count` sockets, or skip the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 512
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"needs {wanted} open files, the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


# How long a normal request may wait for its answer while slow connections are open. Starved
# (a worker thread per slow connection, as under gthread) it would wait out their 30 s client
# timeout; a third of that is a verdict on starvation, far above any normal answer, not a speed
# measurement. Past it raw_exchange raises socket.timeout and the test fails.
NOT_STARVED_S = 10.0


def _status_of_normal_get(port: int, path: str = "/health") -> int:
    return status_of(raw_exchange(port, get(path), timeout=NOT_STARVED_S))


def _still_open(sock: socket.socket) -> bool:
    """Whether the server has neither answered nor closed this connection."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
        return False  # an answer, or the end of the connection
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)


def test_a_thousand_trickling_heads_leave_normal_traffic_answered(django_db_setup):
    slow_count = 1000
    _open_files_for(slow_count)
    with (
        GatewayServer(
            GATEWAY_WORKERS="2",
            GATEWAY_THREADS="4",
            GATEWAY_CLIENT_TIMEOUT="30s",
            GATEWAY_CLIENT_HEADER_TIMEOUT="60s",  # the slow ones stay for the whole test
        ) as server,
        ExitStack() as stack,
    ):
        slow = []
        for _ in range(slow_count):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", server.port), 10))
            sock.sendall(SLOW_HEAD)
            slow.append(sock)
        statuses: list[int] = []
        # At least 12 s of trickling and at least 10 normal requests, whichever is later (the
        # count must not depend on how fast a loaded machine is); capped below the slow heads'
        # 60 s header deadline so they are all still open at the end.
        finish, cap = time.monotonic() + 12, time.monotonic() + 40
        next_trickle = 0.0
        while (time.monotonic() < finish or len(statuses) < 10) and time.monotonic() < cap:
            if time.monotonic() >= next_trickle:  # one more header byte on every slow head
                for sock in slow:
                    sock.send(b"a")
                next_trickle = time.monotonic() + 2
            statuses.append(_status_of_normal_get(server.port))
            time.sleep(0.1)
        still_open = sum(_still_open(sock) for sock in slow)
        log = server.log()
    assert still_open >= slow_count * 0.99, f"only {still_open} slow heads were still open"
    assert len(statuses) >= 10
    assert set(statuses) == {200}
    assert "Traceback" not in log


def test_a_head_trickling_past_the_header_deadline_is_answered_408_and_closed(django_db_setup):
    with GatewayServer(
        GATEWAY_WORKERS="1",
        GATEWAY_CLIENT_TIMEOUT="30s",  # per read: a byte every 0.3 s never trips it
        GATEWAY_CLIENT_HEADER_TIMEOUT="2s",
    ) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=1) as sock:
            sock.sendall(SLOW_HEAD)
            # Trickle until the server ends the connection. The 20 s guard only keeps a broken
            # server from hanging the test (the deadline is 2 s); the connection must have
            # been ended by the server, which is checked, not how long that took.
            guard = time.monotonic() + 20
            answer, closed_by_server = b"", False
            while time.monotonic() < guard:
                try:
                    sock.send(b"a")
                except OSError:
                    closed_by_server = True
                    break
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    time.sleep(0.3)
                    continue
                except OSError:
                    closed_by_server = True
                    break
                if not chunk:
                    closed_by_server = True
                    break
                answer += chunk
        log = server.log()
    assert closed_by_server, "the trickling head was kept open past its header deadline"
    assert status_of(answer) == 408, answer[:200]
    assert problem_of(answer)["code"] == "request_timeout"
    assert header_of(answer, "Connection") == "close"
    assert "HeadTimeout" in log and "Traceback" not in log
    assert "X-Slow" not in log


def _read_answer(sock: socket.socket) -> bytes:
    """One whole answer (head and Content-Length body) from a kept-alive connection."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    length = int(header_of(answer, "Content-Length") or 0)
    while len(answer.split(b"\r\n\r\n", 1)[1]) < length:
        answer += sock.recv(65536)
    return answer


def test_idle_and_half_sent_keepalive_connections_hold_no_thread(django_db_setup):
    threads = 2
    with (
        GatewayServer(
            GATEWAY_WORKERS="1",
            GATEWAY_THREADS=str(threads),
            GATEWAY_KEEPALIVE="60",
            GATEWAY_CLIENT_TIMEOUT="30s",
            GATEWAY_CLIENT_HEADER_TIMEOUT="30s",
        ) as server,
        ExitStack() as stack,
    ):
        kept = []
        for _ in range(4 * threads):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", server.port), 10))
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = _read_answer(sock)
            assert status_of(answer) == 200 and header_of(answer, "Connection") == "keep-alive"
            kept.append(sock)
        for sock in kept[::2]:  # half start their next request and stall mid-head
            sock.sendall(SLOW_HEAD)
        time.sleep(0.3)  # only lets the stalls reach the server first; too short weakens
        status = _status_of_normal_get(server.port)
        assert all(_still_open(sock) for sock in kept)
        # The stalled heads complete later and are served: they were waiting, not dropped.
        kept[0].sendall(b"1\r\n\r\n")
        late = _read_answer(kept[0])
    assert status == 200  # answered within NOT_STARVED_S: no thread is held by the others
    assert status_of(late) == 200

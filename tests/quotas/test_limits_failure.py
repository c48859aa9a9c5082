"""A Redis that is really stopped: fail open (default) or closed, never hang, reload the script."""

from __future__ import annotations

import gc
import json
import logging
import os
import select
import signal
import socket
import struct
import threading
import time
from typing import Any

import pytest
import redis
from django.core.management import CommandError, call_command
from prometheus_client import REGISTRY

import quotas.flusher
import quotas.store
import routing.limits
from gateway_project.redis import redis_client
from quotas.policies import Policy, rate_policy
from quotas.store import RedisStore, StoreUnavailable, use_store
from tests.quotas.conftest import needs_redis
from tests.support.waiting import wait_until


def store_errors() -> float:
    return REGISTRY.get_sample_value("gateway_limit_store_errors_total") or 0.0


@pytest.fixture
def limits_on_throwaway_redis(throwaway_redis, monkeypatch):
    """The proxy's limits kept in a private redis-server the test can stop."""
    use_store(RedisStore(throwaway_redis.client(), prefix="gw:"))
    monkeypatch.setattr(routing.limits, "_store_warning", routing.limits._WarnEvery())
    return throwaway_redis


def test_stopped_redis_fails_open_with_one_warning_and_a_metric(
    client, make_route, upstream, limits_on_throwaway_redis, caplog
):
    make_route("/api/v1/lim/**", upstream.url, rate_limit_requests=1, rate_limit_period="hour")
    assert client.get("/api/v1/lim/echo").status_code == 200
    assert client.get("/api/v1/lim/echo").status_code == 429  # the limit is live
    limits_on_throwaway_redis.stop()
    before = store_errors()
    with caplog.at_level(logging.WARNING, logger="gateway.limits"):
        responses = [client.get("/api/v1/lim/echo") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "RateLimit-Limit" not in responses[0]
    assert store_errors() - before == 3
    warnings = [r for r in caplog.records if "limit store unavailable" in r.getMessage()]
    assert len(warnings) == 1  # once per GATEWAY_LIMITS_WARN_INTERVAL, not once per request


def test_stopped_redis_fails_closed_with_503_problem_when_configured(
    client, make_route, upstream, limits_on_throwaway_redis, settings
):
    settings.GATEWAY_LIMITS_ON_REDIS_FAILURE = "closed"
    make_route("/api/v1/lim/**", upstream.url, rate_limit_requests=5, rate_limit_period="hour")
    make_route("/api/v1/open/**", upstream.url)
    limits_on_throwaway_redis.stop()
    refused = client.get("/api/v1/lim/echo")
    assert refused.status_code == 503
    assert refused["Content-Type"] == "application/problem+json"
    assert json.loads(refused.content)["code"] == "limit_store_unavailable"
    assert upstream.count("/api/v1/lim/") == 0
    # A route with no limit to enforce is not refused because usage could not be counted.
    assert client.get("/api/v1/open/echo").status_code == 200


def test_a_hung_redis_costs_a_request_only_the_short_socket_timeout(
    client, make_route, upstream, limits_on_throwaway_redis
):
    make_route("/api/v1/lim/**", upstream.url, rate_limit_requests=5, rate_limit_period="hour")
    assert client.get("/api/v1/lim/echo").status_code == 200
    process = limits_on_throwaway_redis.process
    process.send_signal(signal.SIGSTOP)  # alive but silent: the worst case for a client
    answers: list[int] = []
    try:
        # The store's real 250 ms socket timeout against a really silent Redis: nothing is
        # timed; the request only has to end (a hang would block for ever), with a bound
        # generous enough for a loaded machine.
        request = threading.Thread(
            target=lambda: answers.append(client.get("/api/v1/lim/echo").status_code)
        )
        request.start()
        request.join(30)
        ended = not request.is_alive()
    finally:
        process.send_signal(signal.SIGCONT)
    request.join(30)
    assert ended, "the request hung on a silent Redis"
    assert answers == [200]  # failed open


def test_script_is_loaded_again_when_redis_has_forgotten_it(throwaway_redis):
    client = throwaway_redis.client()
    store = RedisStore(client, prefix="gw:")
    policy = rate_policy(
        scope="r1",
        consumer_key="a:1",
        requests=3,
        period_seconds=3600,
        burst=3,
        algorithm="token_bucket",
    )
    assert store.check([policy], consume=True).allowed
    client.script_flush()  # as after a Redis restart or failover
    verdict = store.check([policy], consume=True)
    assert verdict.allowed and verdict.states[0].remaining == 1


def _hourly(requests: int = 3) -> Policy:
    return rate_policy(
        scope="r1",
        consumer_key="a:1",
        requests=requests,
        period_seconds=3600,
        burst=requests,
        algorithm="token_bucket",
    )


def _store_connections(client: redis.Redis) -> list[dict[str, Any]]:
    """The throwaway Redis's clients that ran the limit script last."""
    return [c for c in client.client_list() if c["cmd"] in ("evalsha", "eval")]


def test_each_thread_checks_limits_on_one_connection_of_its_own(throwaway_redis):
    client = throwaway_redis.client()
    store = RedisStore(client, prefix="gw:")
    policy = _hourly(requests=1000)

    def check_twenty() -> None:
        for _ in range(20):
            assert store.check([policy], consume=True).allowed

    checked, counted = threading.Event(), threading.Event()

    def check_twenty_and_stay() -> None:
        check_twenty()
        checked.set()
        counted.wait(30)  # alive while counted: a finished thread's connection goes with it

    check_twenty()
    other = threading.Thread(target=check_twenty_and_stay)
    other.start()
    try:
        assert checked.wait(30)
        assert len(_store_connections(client)) == 2  # 40 checks, two threads, two sockets
    finally:
        counted.set()
        other.join(30)
    store.close()
    # Redis notices a closed socket on its next turn: poll, bounded.
    assert wait_until(lambda: not _store_connections(client), message="a socket stayed open")


def test_a_check_after_a_redis_restart_reconnects(throwaway_redis):
    store = RedisStore(throwaway_redis.client(), prefix="gw:")
    assert store.check([_hourly()], consume=True).allowed
    throwaway_redis.stop()
    with pytest.raises(StoreUnavailable):
        store.check([_hourly()], consume=True)
    throwaway_redis.start()  # same port, empty: the script and the counters are gone
    verdict = store.check([_hourly()], consume=True)
    assert verdict.allowed and verdict.states[0].remaining == 2


def test_a_check_after_redis_restarted_while_the_thread_was_idle_succeeds(
    throwaway_redis, monkeypatch
):
    monkeypatch.setattr(quotas.store, "IDLE_CHECK_SECONDS", 0.0)  # every check counts as idle
    store = RedisStore(throwaway_redis.client(), prefix="gw:")
    assert store.check([_hourly()], consume=True).allowed
    throwaway_redis.stop()
    throwaway_redis.start()  # the thread's socket is closed by now; nobody has noticed yet
    verdict = store.check([_hourly()], consume=True)
    assert verdict.allowed and verdict.states[0].remaining == 2


def test_a_thread_drops_its_connection_when_sentinel_names_another_primary(throwaway_redis):
    client = throwaway_redis.client()
    pool = client.connection_pool
    pool.master_address = ("127.0.0.1", throwaway_redis.port)  # as a Sentinel pool has it
    store = RedisStore(client, prefix="gw:")
    assert store.check([_hourly()], consume=True).allowed
    first = store._connection()._sock
    assert store.check([_hourly()], consume=True).allowed
    assert store._connection()._sock is first  # the same primary: the same socket
    pool.master_address = ("127.0.0.2", throwaway_redis.port)  # a failover elsewhere
    assert not store._connection().is_connected  # dropped before anything is sent on it


def test_a_finished_threads_connection_is_closed(throwaway_redis):
    client = throwaway_redis.client()
    store = RedisStore(client, prefix="gw:")
    worker = threading.Thread(target=lambda: store.check([_hourly()], consume=True))
    worker.start()
    worker.join(30)
    del worker

    def closed() -> bool:
        gc.collect()  # the connection and its parser refer to each other: a cycle
        return not _store_connections(client)

    assert wait_until(closed, message="the finished thread's socket stayed open")
    assert len(store._opened) == 0


def test_an_interrupted_check_leaves_no_reply_for_the_next_one(throwaway_redis, monkeypatch):
    store = RedisStore(throwaway_redis.client(), prefix="gw:")
    policy = _hourly()
    assert store.check([policy], consume=True).states[0].remaining == 2
    real_read = quotas.store._Wire.read

    def interrupted(wire: Any) -> Any:
        monkeypatch.setattr(quotas.store._Wire, "read", real_read)  # once
        raise KeyboardInterrupt  # sent, never read: the reply stays on the socket

    monkeypatch.setattr(quotas.store._Wire, "read", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.check([policy], consume=True)
    # Redis ran the interrupted check (remaining 1); reading its stale reply would say so again.
    assert store.check([policy], consume=True).states[0].remaining == 0


def test_a_forked_child_checks_on_its_own_connection(throwaway_redis):
    store = RedisStore(throwaway_redis.client(), prefix="gw:")
    assert store.check([_hourly()], consume=True).allowed
    parents = store._connection()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        answer = b"error"
        try:
            own = store._connection() is not parents
            answer = b"%d %d" % (own, store.check([_hourly()], consume=True).states[0].remaining)
        finally:
            os.write(write_end, answer)
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(child, 0)
    assert answer == b"1 1"
    # The parent's socket still works: the child neither used nor closed it.
    assert store._connection() is parents
    assert store.check([_hourly()], consume=True).states[0].remaining == 0


@needs_redis
def test_the_gateways_redis_client_has_short_timeouts_and_no_retries():
    pool = redis_client().connection_pool
    assert pool.connection_kwargs["socket_timeout"] <= 0.25
    assert pool.connection_kwargs["socket_connect_timeout"] <= 0.25
    connection = pool.get_connection()
    try:
        # redis-py's own Redis() defaults to 3 retries with backoff: seconds per dead call.
        assert connection.retry.get_retries() == 0
    finally:
        pool.release(connection)


def test_flush_usage_command_reports_a_stopped_redis_plainly(throwaway_redis, monkeypatch):
    client = throwaway_redis.client()
    use_store(RedisStore(client, prefix="gw:"))
    monkeypatch.setattr(quotas.flusher, "redis_client", lambda: client)
    throwaway_redis.stop()
    with pytest.raises(CommandError, match="limit store is unavailable"):
        call_command("flush_usage", "--wait", "0.1")


def _kernel_bound_seconds(sock: Any, option: int) -> float:
    seconds, micros = struct.unpack("@ll", sock.getsockopt(socket.SOL_SOCKET, option, 16))
    return seconds + micros / 1e6


def test_the_checks_socket_blocks_with_kernel_bounds_also_after_an_idle_check(
    throwaway_redis, monkeypatch
):
    """No Python socket timeout (a poll() before each send and read): the kernel bounds each
    call by the client's socket_timeout, and can_read() on the idle path does not undo it."""
    store = RedisStore(throwaway_redis.client(), prefix="gw:")
    assert store.check([_hourly()], consume=True).allowed
    sock = store._local.wire.sock
    assert sock.gettimeout() is None
    # The kernel keeps the bound in ticks of up to 4 ms.
    assert _kernel_bound_seconds(sock, socket.SO_RCVTIMEO) == pytest.approx(0.25, abs=0.005)
    assert _kernel_bound_seconds(sock, socket.SO_SNDTIMEO) == pytest.approx(0.25, abs=0.005)
    monkeypatch.setattr(quotas.store, "IDLE_CHECK_SECONDS", 0.0)  # every check counts as idle
    assert store.check([_hourly()], consume=True).allowed
    assert store._local.wire.sock is sock  # the idle check kept the healthy socket
    assert sock.gettimeout() is None


def _check_while_stopped(server: Any, store: RedisStore) -> list[str]:
    """On a new thread, a check on its connection (made while the server answers), then one
    with the server SIGSTOPped (alive but silent): how the second ended, and whether the
    thread's connection stayed open. Not timed: a check that never ends fails the test
    instead of hanging it."""
    outcome: list[str] = []
    connected, stopped = threading.Event(), threading.Event()

    def check() -> None:
        assert store.check([_hourly()], consume=True).allowed
        connected.set()
        stopped.wait(30)
        try:
            store.check([_hourly()], consume=True)
            outcome.append("verdict")
        except StoreUnavailable:
            outcome.append("unavailable")
        if store._local.connection.is_connected:
            outcome.append("still connected")

    checking = threading.Thread(target=check, daemon=True)
    checking.start()
    assert connected.wait(30), "the first check did not end"
    server.process.send_signal(signal.SIGSTOP)
    try:
        stopped.set()
        checking.join(30)
        ended = not checking.is_alive()
    finally:
        server.process.send_signal(signal.SIGCONT)
    checking.join(30)
    assert ended, "the check hung on a silent Redis"
    return outcome


def test_a_silent_redis_ends_a_check_at_the_kernel_bound(throwaway_redis):
    store = RedisStore(throwaway_redis.client(), prefix="gw:")
    # Dropped: the late reply is never read as the thread's next check's.
    assert _check_while_stopped(throwaway_redis, store) == ["unavailable"]
    # Redis may or may not have run the unanswered check once resumed (remaining 0 or 1).
    verdict = store.check([_hourly()], consume=True)
    assert verdict.allowed and verdict.states[0].remaining in (0, 1)


def test_an_error_reply_is_store_unavailable_and_the_next_check_starts_clean(throwaway_redis):
    client = throwaway_redis.client()
    store = RedisStore(client, prefix="gw:")
    policy = _hourly()
    assert store.check([policy], consume=True).allowed
    client.delete(f"gw:{policy.key}")
    client.lpush(f"gw:{policy.key}", "not a bucket")  # the script's commands get WRONGTYPE
    with pytest.raises(StoreUnavailable, match="WRONGTYPE"):
        store.check([policy], consume=True)
    client.delete(f"gw:{policy.key}")
    verdict = store.check([policy], consume=True)
    assert verdict.allowed and verdict.states[0].remaining == 2


def test_an_idle_check_drops_a_connection_holding_a_reply_nobody_asked_for(
    throwaway_redis, monkeypatch
):
    store = RedisStore(throwaway_redis.client(), prefix="gw:")
    assert store.check([_hourly()], consume=True).allowed
    wire = store._local.wire
    wire._reader.feed(b"*5\r\n:1\r\n:0\r\n:0\r\n:0\r\n:0\r\n")  # a stray reply, already buffered
    monkeypatch.setattr(quotas.store, "IDLE_CHECK_SECONDS", 0.0)
    verdict = store.check([_hourly()], consume=True)
    assert store._local.wire is not wire  # a new socket, not the stray reply read as the verdict
    assert verdict.allowed and verdict.states[0].remaining == 1


def test_a_silent_redis_over_tls_ends_a_check_at_the_socket_timeout(throwaway_tls_redis):
    """OpenSSL retries a read that a kernel bound ended: a TLS socket keeps Python's timeout."""
    store = RedisStore(throwaway_tls_redis.client(), prefix="gw:")
    assert store.check([_hourly()], consume=True).allowed
    assert store._local.wire.sock.gettimeout() == pytest.approx(0.25)
    assert _check_while_stopped(throwaway_tls_redis, store) == ["unavailable"]


def _readable(sock: Any) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def test_push_messages_on_the_checks_connection_are_skipped(throwaway_redis):
    """RESP3 pushes (client tracking here; maintenance notifications on Redis Cloud) answer
    no command: read as a check's reply, every later check would get the one before's."""
    client = throwaway_redis.client()
    store = RedisStore(client, prefix="gw:")
    allowed = _hourly(requests=5)
    refused = rate_policy(
        scope="r2", consumer_key="b:1", requests=1, period_seconds=3600, burst=1,
        algorithm="token_bucket",
    )  # fmt: skip
    assert store.check([refused], consume=True).allowed  # its only unit
    wire = store._local.wire
    store._send(wire, ("CLIENT", "TRACKING", "ON", "BCAST"))  # every key change pushed here
    assert wire.read() == b"OK"
    client.set("gw:tracked", "1")  # an invalidation push is on its way to the store's socket
    assert wait_until(lambda: _readable(wire.sock), message="no push came")
    verdicts = [
        store.check([allowed], consume=True).allowed,
        store.check([refused], consume=True).allowed,
        store.check([allowed], consume=True).allowed,
    ]
    assert verdicts == [True, False, True]


def test_a_reply_of_another_shape_is_store_unavailable_and_drops_the_connection(
    throwaway_redis, monkeypatch
):
    store = RedisStore(throwaway_redis.client(), prefix="gw:")
    assert store.check([_hourly()], consume=True).allowed
    real_read = quotas.store._Wire.read

    def odd_reply(wire: Any) -> Any:
        real_read(wire)  # the real reply, then something else handed back
        monkeypatch.setattr(quotas.store._Wire, "read", real_read)
        return [b"MIGRATING", 1]

    monkeypatch.setattr(quotas.store._Wire, "read", odd_reply)
    with pytest.raises(StoreUnavailable):
        store.check([_hourly()], consume=True)
    assert not store._local.connection.is_connected
    verdict = store.check([_hourly()], consume=True)
    assert verdict.allowed and verdict.states[0].remaining == 0


def test_a_send_to_a_redis_reading_slowly_ends_at_the_bound_in_total():
    """SO_SNDTIMEO bounds each send(); the command's whole write has one deadline."""
    ours, peer = socket.socketpair()
    wire = quotas.store._Wire(ours, 0.25)

    def read_slowly() -> None:
        # 16 KiB every 20 ms: some progress within each send's bound, so an unbounded write of
        # 8 MiB would succeed after about 10 s. Bounded in count; ends when the wire closes.
        for _ in range(1000):
            try:
                if not peer.recv(16384):
                    return
            except OSError:
                return
            time.sleep(0.02)

    reader = threading.Thread(target=read_slowly, daemon=True)
    reader.start()
    try:
        with pytest.raises(TimeoutError):
            wire.send(b"x" * (8 << 20))
    finally:
        ours.close()
        reader.join(30)
        peer.close()

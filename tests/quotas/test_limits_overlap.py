"""The limit check sent before forward builds the upstream request, its verdict taken after.

The overlap must change nothing a caller or an operator sees: a 429 still outranks every error
of the forward step, nothing goes upstream and no body is read before the verdict, and no
check's reply is ever read as another's.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import threading
from typing import Any

import pytest
from prometheus_client import REGISTRY

import routing.proxy
from gateway_project.errors import BadRequest
from quotas.policies import Policy, rate_policy
from quotas.store import MemoryStore, RedisStore, StoreUnavailable, _ScriptCall, _Wire
from routing import limits, pipeline
from routing.pipeline import RequestContext
from routing.table import route_tables
from tests.quotas.conftest import needs_redis
from tests.support.waiting import wait_until


def _hourly(requests: int = 3, consumer: str = "a:1") -> Policy:
    return rate_policy(
        scope="r1",
        consumer_key=consumer,
        requests=requests,
        period_seconds=3600,
        burst=requests,
        algorithm="token_bucket",
    )


def _remaining(store: Any, policy: Policy) -> int:
    """What is left of `policy`, seen without consuming, on the calling thread's connection."""
    return int(store.check([policy], consume=False).states[0].remaining)


# --- The store: a begun check --------------------------------------------------------------


@needs_redis
def test_a_begun_check_is_sent_before_its_verdict_is_asked_for(throwaway_redis):
    store = RedisStore(throwaway_redis.client(), prefix="gw:")
    observer = RedisStore(throwaway_redis.client(), prefix="gw:")
    policy = _hourly()
    assert _remaining(store, policy) == 3  # loads the script (a NOSCRIPT reply waits for EVAL)
    pending = store.begin_check([policy], consume=True)
    # Redis runs the script while the caller does other work: another connection sees it spent.
    assert wait_until(lambda: _check_on_another_thread(observer, policy) == 2)
    assert pending.verdict().states[0].remaining == 2


def _check_on_another_thread(store: RedisStore, policy: Policy) -> int:
    """What is left of `policy`, seen from another thread's connection."""
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(_remaining(store, policy)))
    thread.start()
    thread.join(10)
    return seen[0]


@needs_redis
def test_a_check_never_settled_leaves_no_reply_for_the_next_one(throwaway_redis):
    store = RedisStore(throwaway_redis.client(), prefix="gw:")
    policy = _hourly()
    assert _remaining(store, policy) == 3  # loads the script
    abandoned = store.begin_check([policy], consume=True)
    # Redis ran the abandoned check (remaining 2); reading its reply as this one's would say 2.
    assert store.check([policy], consume=True).states[0].remaining == 1
    with pytest.raises(StoreUnavailable, match="dropped"):
        abandoned.verdict()
    assert store.check([policy], consume=True).states[0].remaining == 0


@needs_redis
def test_a_verdict_is_read_once(throwaway_redis):
    store = RedisStore(throwaway_redis.client(), prefix="gw:")
    pending = store.begin_check([_hourly()], consume=True)
    assert pending.verdict().allowed
    with pytest.raises(RuntimeError, match="read once"):
        pending.verdict()  # a second read would wait for a reply that never comes


def _lines(function: Any) -> range:
    source, first = inspect.getsourcelines(function)
    return range(first, first + len(source))


@needs_redis
def test_an_interrupt_anywhere_in_a_check_leaves_no_reply_for_the_next_one(throwaway_redis):
    """KeyboardInterrupt before each line of the begun check's code, one line per run."""
    client = throwaway_redis.client()
    interrupted: dict[str, int] = {}
    functions = (
        _ScriptCall.__init__,
        _ScriptCall.verdict,
        RedisStore._wire,
        RedisStore._send_script,
        RedisStore._send,
        RedisStore._read_script,
        _Wire.send,
        _Wire.read,
    )
    for function in functions:
        for line in _lines(function):
            store = RedisStore(client, prefix="gw:")
            policy = _hourly(requests=9, consumer=f"a:{function.__name__}:{line}")
            assert store.check([policy], consume=True).allowed  # connected, script loaded
            check = functools.partial(store.check, [policy], consume=True)
            if _interrupt_at(function.__code__, line, check):
                interrupted[function.__qualname__] = interrupted.get(function.__qualname__, 0) + 1
            seen = _check_on_another_thread(store, policy)
            assert store.check([policy], consume=True).states[0].remaining == seen - 1, line
    # Every function was interrupted, at each of its lines that a check runs.
    assert set(interrupted) == {function.__qualname__ for function in functions}, interrupted


def _interrupt_at(code: Any, line: int, call: Any) -> bool:
    """Run `call`, raising KeyboardInterrupt when `code` reaches `line`; whether it did."""
    fired: list[int] = []

    def on_line(frame: Any, event: str, _arg: Any) -> Any:
        if event == "line" and frame.f_lineno == line and not fired:
            fired.append(line)
            raise KeyboardInterrupt
        return on_line

    sys.settrace(lambda frame, _event, _arg: on_line if frame.f_code is code else None)
    try:
        call()
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(None)
    return bool(fired)


@needs_redis
def test_a_stopped_redis_fails_at_the_verdict_not_at_the_start(throwaway_redis):
    store = RedisStore(throwaway_redis.client(), prefix="gw:")
    policy = _hourly()
    assert store.check([policy], consume=True).allowed
    throwaway_redis.stop()
    pending = store.begin_check([policy], consume=True)  # the send fails: kept for the verdict
    with pytest.raises(StoreUnavailable):
        pending.verdict()
    throwaway_redis.start()  # empty: the counters start again
    assert store.check([policy], consume=True).states[0].remaining == 2


@needs_redis
def test_the_script_is_loaded_again_when_the_verdict_finds_it_gone(throwaway_redis):
    client = throwaway_redis.client()
    store = RedisStore(client, prefix="gw:")
    policy = _hourly()
    assert store.check([policy], consume=True).allowed
    pending = store.begin_check([policy], consume=False)
    assert pending.verdict().states[0].remaining == 2
    client.script_flush()  # as after a Redis restart or failover
    pending = store.begin_check([policy], consume=True)
    assert pending.verdict().states[0].remaining == 1


def test_the_memory_store_begins_and_settles_as_it_checks():
    store = MemoryStore()
    policy = _hourly(requests=2)
    assert store.begin_check([policy], consume=True).verdict().states[0].remaining == 1
    assert store.check([policy], consume=True).states[0].remaining == 0
    assert not store.begin_check([policy], consume=True).verdict().allowed


# --- The pipeline: where the overlap is used ------------------------------------------------


def _limit_step(make_route: Any, upstream: Any, path: str, **fields: Any) -> pipeline.Limit:
    make_route(path, upstream.url, rate_limit_requests=5, **fields)
    route = route_tables.get().match("GET", path.replace("**", "x"))
    steps = pipeline.build_steps(route)
    limit = next(step for step in steps.request if step.name == "limit")
    assert isinstance(limit, pipeline.Limit)
    return limit


def test_forward_takes_the_verdict_only_when_it_follows_the_limit_step(make_route, upstream):
    assert _limit_step(make_route, upstream, "/api/v1/plain/**").settled_by_forward
    with_cache = _limit_step(make_route, upstream, "/api/v1/cached/**", cache_ttl_ms=30_000)
    assert not with_cache.settled_by_forward  # the cache lookup would run before the verdict


def test_a_dry_run_and_a_traced_request_take_the_verdict_in_the_limit_step(
    make_route, upstream, monkeypatch
):
    limit = _limit_step(make_route, upstream, "/api/v1/plain/**")
    calls: list[str] = []
    monkeypatch.setattr(limits, "check_limits", lambda ctx: calls.append("check"))
    monkeypatch.setattr(limits, "begin_limits", lambda ctx: calls.append("begin"))

    class Traced:
        server_span = object()

    for dry_run, trace in ((True, None), (False, Traced())):
        ctx = RequestContext(method="GET", raw_path="/", meta={}, dry_run=dry_run)
        ctx.http_request = object()  # type: ignore[assignment]
        ctx.trace = trace  # type: ignore[assignment]
        limit.run(ctx)
    assert calls == ["check", "check"]


# --- Through the proxy ----------------------------------------------------------------------


def _store_errors() -> float:
    return REGISTRY.get_sample_value("gateway_limit_store_errors_total") or 0.0


def test_a_429_outranks_an_error_building_the_upstream_request(
    client, make_route, upstream, monkeypatch
):
    make_route("/api/v1/lim/**", upstream.url, rate_limit_requests=1, rate_limit_period="hour")
    built = routing.proxy._upstream_headers

    def refusing(*args: Any) -> dict[str, str]:
        raise BadRequest("refused while building the headers")

    errors = _store_errors()
    monkeypatch.setattr(routing.proxy, "_upstream_headers", refusing)
    first = client.get("/api/v1/lim/echo")
    assert first.status_code == 400  # allowed, then refused by forward: the unit is spent
    assert first["RateLimit-Remaining"] == "0"
    second = client.get("/api/v1/lim/echo")
    assert second.status_code == 429  # not the 400 forward would give
    assert json.loads(second.content)["code"] == "rate_limit_exceeded"
    monkeypatch.setattr(routing.proxy, "_upstream_headers", built)
    assert client.get("/api/v1/lim/echo").status_code == 429
    assert _store_errors() == errors  # every reply was read as its own check's
    assert upstream.count("/api/v1/lim/") == 0


def test_an_interrupt_building_the_upstream_request_is_not_replaced_by_the_429(
    client, make_route, upstream, monkeypatch
):
    make_route("/api/v1/lim/**", upstream.url, rate_limit_requests=1, rate_limit_period="hour")
    assert client.get("/api/v1/lim/echo").status_code == 200
    built = routing.proxy._upstream_headers

    def interrupted(*args: Any) -> dict[str, str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(routing.proxy, "_upstream_headers", interrupted)
    errors = _store_errors()
    with pytest.raises(KeyboardInterrupt):
        client.get("/api/v1/lim/echo")  # the check was sent, its reply never read
    monkeypatch.setattr(routing.proxy, "_upstream_headers", built)
    refused = client.get("/api/v1/lim/echo")
    assert refused.status_code == 429 and refused["RateLimit-Remaining"] == "0"
    assert _store_errors() == errors  # the unread reply was dropped, not read as this one's
    assert upstream.count("/api/v1/lim/") == 1


def test_a_429_comes_before_the_body_is_read_or_judged(client, make_route, upstream):
    make_route("/api/v1/lim/**", upstream.url, rate_limit_requests=2, rate_limit_period="hour")
    posted = client.post("/api/v1/lim/echo", data=b"{}", content_type="application/json")
    assert posted.status_code == 200
    judged = client.generic("POST", "/api/v1/lim/echo", b"x", CONTENT_LENGTH="not a number")
    assert judged.status_code == 400  # allowed (the last unit), then the body is judged
    refused = client.generic("POST", "/api/v1/lim/echo", b"x", CONTENT_LENGTH="not a number")
    assert refused.status_code == 429
    assert upstream.count("/api/v1/lim/") == 1


def test_an_allowed_request_is_forwarded_with_every_header_and_its_body(
    client, make_route, upstream
):
    make_route("/api/v1/lim/**", upstream.url, rate_limit_requests=5)
    response = client.post(
        "/api/v1/lim/echo?q=1", data=b'{"a": 1}', content_type="application/json"
    )
    assert response.status_code == 200
    seen = upstream.received[-1]
    assert (seen.path, seen.query, seen.body) == ("/api/v1/lim/echo", "q=1", b'{"a": 1}')
    assert seen.headers["content-length"] == "8"
    assert seen.headers["x-request-id"] and seen.headers["via"]
    assert client.get("/api/v1/lim/echo").status_code == 200
    assert "content-length" not in upstream.received[-1].headers  # a GET without a body

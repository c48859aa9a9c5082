"""The counter stores: token bucket, sliding window, quotas, atomicity, exactness, TTLs.

Every behaviour runs against the in-process store and against real Redis (the Lua script).
"""

from __future__ import annotations

import io
import random
import threading
from datetime import UTC, datetime
from functools import partial

import pytest
from django.core.management import call_command

from gateway_project.redis import redis_client
from quotas import store as store_module
from quotas.policies import (
    Policy,
    consumer_key,
    period_end,
    quota_policies,
    rate_policy,
)
from quotas.store import RedisStore
from tests.quotas.conftest import clock_at, needs_redis


def bucket(consumer: str = "a:10.0.0.1", *, requests: int, per: int, burst: int) -> Policy:
    return rate_policy(
        scope="r1",
        consumer_key=consumer,
        requests=requests,
        period_seconds=per,
        burst=burst,
        algorithm="token_bucket",
    )


def window(consumer: str = "a:10.0.0.1", *, requests: int, per: int) -> Policy:
    return rate_policy(
        scope="r2",
        consumer_key=consumer,
        requests=requests,
        period_seconds=per,
        burst=requests,
        algorithm="sliding_window",
    )


def passes(store, policies, n: int) -> list[bool]:
    return [store.check(policies, consume=True).allowed for _ in range(n)]


def test_token_bucket_lets_the_burst_through_at_once_then_refuses(store_factory, clock):
    store = store_factory(clock)
    policy = bucket(requests=60, per=60, burst=5)
    assert passes(store, [policy], 7) == [True] * 5 + [False] * 2


def test_token_bucket_burst_defaults_to_the_rate_and_reports_remaining(store_factory, clock):
    store = store_factory(clock)
    policy = bucket(requests=3, per=60, burst=3)
    remaining = [store.check([policy], consume=True).states[0].remaining for _ in range(3)]
    assert remaining == [2, 1, 0]


def test_token_bucket_refills_at_the_rate_over_time(store_factory, clock):
    store = store_factory(clock)
    policy = bucket(requests=60, per=60, burst=2)  # one token per second
    assert passes(store, [policy], 3) == [True, True, False]
    refused = store.check([policy], consume=True)
    assert refused.states[0].retry_after_seconds == pytest.approx(1.0)
    clock.advance(0.5)
    assert passes(store, [policy], 1) == [False]
    clock.advance(0.5)
    assert passes(store, [policy], 2) == [True, False]
    clock.advance(10)  # a long pause refills to the burst, never beyond it
    assert passes(store, [policy], 3) == [True, True, False]


def test_refused_requests_do_not_use_tokens(store_factory, clock):
    store = store_factory(clock)
    policy = bucket(requests=60, per=60, burst=1)
    assert passes(store, [policy], 1) == [True]
    for _ in range(4):
        clock.advance(0.125)
        assert not store.check([policy], consume=True).allowed
    clock.advance(0.5)  # 1.0 s after the first request: exactly one token is back
    assert passes(store, [policy], 1) == [True]


def test_token_bucket_with_a_fractional_refill_interval_stays_exact(store_factory, clock):
    store = store_factory(clock)
    policy = bucket(requests=7, per=60, burst=7)  # a token every 8.571428... s
    assert passes(store, [policy], 8) == [True] * 7 + [False]
    clock.advance(8.571428)  # a microsecond short of 60/7 s
    assert passes(store, [policy], 1) == [False]
    clock.advance(0.000001)
    assert passes(store, [policy], 2) == [True, False]


def test_per_second_and_per_hour_rates(store_factory, clock):
    store = store_factory(clock)
    per_second = bucket("a:1", requests=2, per=1, burst=2)
    per_hour = bucket("a:2", requests=3600, per=3600, burst=1)
    assert passes(store, [per_second], 3) == [True, True, False]
    assert passes(store, [per_hour], 2) == [True, False]
    clock.advance(1)
    assert passes(store, [per_second], 3) == [True, True, False]
    assert passes(store, [per_hour], 2) == [True, False]


def test_sliding_window_admits_at_most_n_in_any_window(store_factory, clock):
    store = store_factory(clock)
    policy = window(requests=3, per=10)
    times = []
    for _ in range(60):  # one attempt every 0.7 s for 42 s
        if store.check([policy], consume=True).allowed:
            times.append(clock())
        clock.advance(0.7)
    assert all(later - earlier >= 10 for earlier, later in zip(times, times[3:], strict=False))
    assert len(times) >= 12  # and it does let requests through as the window slides


def test_sliding_window_has_no_burst_at_the_window_edge(store_factory, clock):
    store = store_factory(clock)
    policy = window(requests=4, per=10)
    clock.advance(9)
    assert passes(store, [policy], 4) == [True] * 4
    clock.advance(1.5)  # a fixed window would have started afresh here
    assert passes(store, [policy], 1) == [False]
    clock.advance(8.5)  # 10 s after the four
    assert passes(store, [policy], 5) == [True] * 4 + [False]


def test_separate_consumers_have_separate_buckets(store_factory, clock):
    store = store_factory(clock)
    alice = bucket(consumer_key("user", "1"), requests=2, per=60, burst=2)
    bob = bucket(consumer_key("user", "2"), requests=2, per=60, burst=2)
    assert passes(store, [alice], 3) == [True, True, False]
    assert passes(store, [bob], 3) == [True, True, False]


def test_all_policies_must_pass_and_a_refusal_consumes_from_none(store_factory, clock):
    store = store_factory(clock)
    consumer = consumer_key("user", "7")
    rate = bucket(consumer, requests=5, per=3600, burst=5)
    day_quota = quota_policies(consumer_key=consumer, per_day=2, per_month=None)
    policies = [rate, *day_quota]
    assert passes(store, policies, 4) == [True, True, False, False]
    states = store.check([rate], consume=False).states
    assert states[0].remaining == 3  # the two refusals took nothing from the rate limit
    refused = store.check(policies, consume=True)
    assert [s.policy.name for s in refused.exceeded] == ["day"]


def test_dry_run_reports_without_consuming(store_factory, clock):
    store = store_factory(clock)
    policy = bucket(requests=60, per=60, burst=2)
    for _ in range(5):
        verdict = store.check([policy], consume=False)
        assert verdict.allowed and verdict.states[0].remaining == 2
    assert passes(store, [policy], 3) == [True, True, False]
    assert not store.check([policy], consume=False).allowed


def test_day_quota_rolls_over_at_the_utc_day_boundary(store_factory):
    clock = clock_at(datetime(2027, 3, 10, 23, 59, 59, tzinfo=UTC))
    store = store_factory(clock)
    quota = quota_policies(consumer_key="u:1", per_day=2, per_month=None)
    assert passes(store, quota, 3) == [True, True, False]
    refused = store.check(quota, consume=True)
    assert refused.states[0].retry_after_seconds == pytest.approx(1.0)
    clock.advance(0.999)
    assert passes(store, quota, 1) == [False]
    clock.advance(0.001)  # 00:00:00 UTC
    assert passes(store, quota, 3) == [True, True, False]


@pytest.mark.parametrize(
    "last_second, next_month_days",
    [
        (datetime(2027, 1, 31, 23, 59, 59, tzinfo=UTC), 28),
        (datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC), 31),  # leap year
        (datetime(2027, 12, 31, 23, 59, 59, tzinfo=UTC), 31),  # new year
    ],
)
def test_month_quota_rolls_over_at_the_utc_month_boundary(
    store_factory, last_second, next_month_days
):
    clock = clock_at(last_second)
    store = store_factory(clock)
    quota = quota_policies(consumer_key="u:1", per_day=None, per_month=2)
    assert passes(store, quota, 3) == [True, True, False]
    clock.advance(1)
    verdict = store.check(quota, consume=True)
    assert verdict.allowed
    assert verdict.states[0].remaining == 1
    assert verdict.states[0].reset_seconds == next_month_days * 86_400


@needs_redis
def test_lua_calendar_agrees_with_python_on_random_instants():
    rng = random.Random(4)
    instants = [rng.uniform(0, 4_102_444_800) for _ in range(200)]  # 1970..2100
    instants += [datetime(y, m, 1, tzinfo=UTC).timestamp() for y in (2000, 2100) for m in (2, 3)]
    for at in instants:
        store = RedisStore(redis_client(), clock=partial(float, at), prefix="unused:")
        policies = quota_policies(consumer_key="u:1", per_day=1, per_month=1)
        day, month = store.check(policies, consume=False).states
        assert day.reset_seconds == pytest.approx(period_end("day", at) - at, abs=1e-6)
        assert month.reset_seconds == pytest.approx(period_end("month", at) - at, abs=1e-6)


def test_reset_and_top_up_change_only_the_current_period(store_factory, clock):
    store = store_factory(clock)
    quota = quota_policies(consumer_key="c:9", per_day=2, per_month=100)
    assert passes(store, quota, 3) == [True, True, False]
    store.adjust_quota(consumer_key="c:9", kind="day", top_up=3)
    assert passes(store, quota, 4) == [True, True, True, False]
    store.adjust_quota(consumer_key="c:9", kind="day", top_up=None)
    assert passes(store, quota, 3) == [True, True, False]
    month = store.check(quota, consume=False).states[1]
    assert month.remaining == 100 - 7  # resetting the day left the month's count alone


@pytest.mark.parametrize("kind", ["token_bucket", "sliding_window"])
def test_exactly_n_pass_among_many_concurrent_threads(store_factory, kind):
    store = store_factory()
    limit = 37
    policy = rate_policy(
        scope="r9",
        consumer_key="a:10.1.1.1",
        requests=limit,
        period_seconds=3600,
        burst=limit,
        algorithm=kind,
    )
    quota = quota_policies(consumer_key="a:10.1.1.1", per_day=1000, per_month=None)
    allowed: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait()
        mine = [store.check([policy, *quota], consume=True).allowed for _ in range(25)]
        with lock:
            allowed.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(allowed) == 200
    assert allowed.count(True) == limit
    day = store.check(quota, consume=False).states[0]
    assert day.remaining == 1000 - limit  # refused requests never reached the quota


@needs_redis
def test_every_key_the_script_writes_has_a_ttl(fresh_limit_store):
    store = fresh_limit_store
    assert isinstance(store, RedisStore)
    policies = [
        bucket("u:1", requests=10, per=60, burst=10),
        window("u:1", requests=10, per=60),
        *quota_policies(consumer_key="u:1", per_day=10, per_month=10),
    ]
    store.check(policies, consume=True, usage_field='["user","1","ann",1,"GET /x"]')
    store.adjust_quota(consumer_key="u:2", kind="month", top_up=5)
    client = redis_client()
    keys = list(client.scan_iter(f"{store._prefix}*"))
    assert len(keys) == 6  # bucket, window, day, month, usage, the top-up's month
    assert all(client.pttl(key) > 0 for key in keys)


@needs_redis
def test_redis_store_decides_with_the_redis_clock():
    store = RedisStore(redis_client(), prefix="unused:")
    seconds, micros = redis_client().time()
    verdict = store.check([bucket(requests=1, per=1, burst=1)], consume=False)
    assert verdict.now == pytest.approx(seconds + micros / 1e6, abs=2.0)


@needs_redis
def test_the_check_command_goes_out_as_redis_py_packs_it(fresh_limit_store, monkeypatch):
    """hiredis's packer is called directly on the check's path; the bytes are redis-py's."""
    store = fresh_limit_store
    assert isinstance(store, RedisStore)
    policies = [
        bucket("u:ü", requests=10, per=60, burst=10),
        *quota_policies(consumer_key="u:ü", per_day=10, per_month=10),
    ]
    store.check(policies, consume=True)  # this thread's connection exists now
    connection = store._local.connection
    sent: list[bytes] = []
    real_send = store_module._Wire.send

    def recording_send(wire, packed):
        sent.append(packed)
        return real_send(wire, packed)

    monkeypatch.setattr(store_module._Wire, "send", recording_send)
    monkeypatch.setattr(store, "_now_arg", lambda: "1700000000000000")
    # The check's path neither packs nor sends through redis-py's connection.
    real_pack = connection.pack_command
    monkeypatch.setattr(connection, "pack_command", lambda *a: pytest.fail("packed by redis-py"))
    monkeypatch.setattr(
        connection, "send_packed_command", lambda *a, **k: pytest.fail("sent by redis-py")
    )
    verdict = store.check(policies, consume=True, usage_field='["user","1","ann",1,"GET /x"]')
    assert verdict.allowed
    keys = [store._prefix + policy.key for policy in policies] + [store._prefix + "rl:usage"]
    args = ["1700000000000000", "1", '["user","1","ann",1,"GET /x"]', 7 * 86_400, len(policies)]
    for policy in policies:
        args += [
            store_module._KIND_CODES[policy.kind],
            policy.limit,
            policy.requests,
            policy.period_seconds * 1_000_000,
        ]
    expected = real_pack("EVALSHA", store_module.LUA_SHA, len(keys), *keys, *args)
    assert sent == [b"".join(expected)]


@needs_redis
def test_bench_limits_counts_one_round_trip_per_check():
    out = io.StringIO()
    call_command("bench_limits", "--calls", "5", stdout=out)
    assert "5 calls, 1.00 round trips/call" in out.getvalue()

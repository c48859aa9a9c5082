"""`manage.py bench_limits`: the cost of one limit check (µs per call, Redis round trips)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from gateway_project.redis import redis_client, redis_key
from quotas.policies import Policy, quota_policies, rate_policy
from quotas.store import LimitStore, MemoryStore, RedisStore


class _CountingStore(RedisStore):
    """A Redis store that counts the commands it sends (one per round trip)."""

    sent = 0

    def _send(self, wire: Any, command: tuple[Any, ...]) -> None:
        self.sent += 1
        super()._send(wire, command)


def _policies() -> list[Policy]:
    key = f"u:bench-{uuid.uuid4().hex[:8]}"
    rate = rate_policy(
        scope="bench",
        consumer_key=key,
        requests=1_000_000,
        period_seconds=60,
        burst=1_000_000,
        algorithm="token_bucket",
    )
    return [rate, *quota_policies(consumer_key=key, per_day=10_000_000, per_month=10_000_000)]


def _time(store: LimitStore, calls: int) -> float:
    policies = _policies()
    usage = '["user","bench","bench",0,"GET /bench"]'
    store.check(policies, consume=True, usage_field=usage)  # load the script, warm the pool
    started = time.perf_counter()
    for _ in range(calls):
        store.check(policies, consume=True, usage_field=usage)
    return (time.perf_counter() - started) / calls * 1e6


class Command(BaseCommand):
    """Time `calls` limit checks (rate limit + day + month quota + usage count) per store."""

    help = "Measure the limit check: microseconds per call and Redis round trips per call."

    def add_arguments(self, parser: CommandParser) -> None:
        """--calls: how many checks to time (bounded)."""
        parser.add_argument("--calls", type=int, default=2000, choices=range(1, 100_001))

    def handle(self, *args: Any, **options: Any) -> None:
        """Print one line per store."""
        calls = options["calls"]
        memory_us = _time(MemoryStore(), calls)
        self.stdout.write(f"in-process store: {memory_us:.1f} us/call over {calls} calls")
        client = redis_client()
        if client is None:
            self.stdout.write("Redis store: skipped (REDIS_URL is not set)")
            return
        prefix = redis_key(f"bench{uuid.uuid4().hex[:8]}:")
        store = _CountingStore(client, prefix=prefix)
        try:
            store.check(_policies(), consume=False)  # script loaded before counting
            store.sent = 0
            redis_us = _time(store, calls)
            trips = store.sent / (calls + 1)
        finally:
            store.close()
            keys = list(client.scan_iter(f"{prefix}*"))
            if keys:
                client.delete(*keys)
        self.stdout.write(
            f"Redis store:      {redis_us:.1f} us/call over {calls} calls, "
            f"{trips:.2f} round trips/call"
        )

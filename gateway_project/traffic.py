"""Per-minute traffic aggregates for the console dashboard, without a write per request.

Each worker adds requests to an in-memory buffer (a dict update under a lock); a daemon
thread flushes it every GATEWAY_TRAFFIC_FLUSH into one Redis pipeline of HINCRBYs on a
per-minute and a per-hour hash, so the hot path never waits for the network.  Without Redis
the same aggregates live in the process (the embedded mode runs one worker).

Fields of a bucket hash: `n|<route>` requests, `e|<route>` 5xx answers, `x|<route>` limit
rejections, `ms|<route>` summed milliseconds, `b<i>|<route>` latency histogram counts
(bounds in LATENCY_BOUNDS_MS), `c|<consumer>` requests per consumer.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import time
from collections import Counter
from typing import Any

from django.conf import settings

from gateway_project.redis import redis_client, redis_key

logger = logging.getLogger("gateway.traffic")

LATENCY_BOUNDS_MS = (5, 10, 25, 50, 75, 100, 150, 250, 400, 600, 1000, 1500, 2500, 5000, 10000)
_MINUTE_TTL = 2 * 3600
_HOUR_TTL = 26 * 3600
_MEMORY_MINUTES = 61
_MEMORY_HOURS = 25


def minute_key(minute: int) -> str:
    """The Redis key of one minute's aggregates."""
    return redis_key(f"traffic:m:{minute}")


def hour_key(hour: int) -> str:
    """The Redis key of one hour's aggregates."""
    return redis_key(f"traffic:h:{hour}")


class TrafficBuffer:
    """One process's not-yet-flushed aggregates: (minute, field) -> count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[int, str]] = Counter()
        self._names: dict[str, tuple[str, ...]] = {}

    def _fields(self, route: str) -> tuple[str, ...]:
        # Field names are built once per route so the hot path does no string formatting:
        # n, e, x, ms, then one per latency bucket.
        names = self._names.get(route)
        if names is None:
            if len(self._names) > 10_000:
                self._names.clear()
            kinds = ("n", "e", "x", "ms", *(f"b{i}" for i in range(len(LATENCY_BOUNDS_MS) + 1)))
            names = self._names[route] = tuple(f"{kind}|{route}" for kind in kinds)
        return names

    def record(
        self,
        *,
        route: str,
        status: int,
        rejected: bool,
        total_ms: float,
        consumer: str | None,
        now: float | None = None,
    ) -> None:
        """Add one answered request."""
        minute = int((now if now is not None else time.time()) // 60)
        names = self._fields(route)
        bucket = names[4 + bisect.bisect_left(LATENCY_BOUNDS_MS, total_ms)]
        counts = self._counts
        with self._lock:
            counts[minute, names[0]] += 1
            counts[minute, bucket] += 1
            counts[minute, names[3]] += int(total_ms)
            if status >= 500:
                counts[minute, names[1]] += 1
            if rejected:
                counts[minute, names[2]] += 1
            if consumer:
                counts[minute, "c|" + consumer] += 1

    def drain(self) -> Counter[tuple[int, str]]:
        """Take everything recorded so far, leaving the buffer empty."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        return counts


class MemoryStore:
    """Aggregates kept in this process (no Redis): recent minutes and hours only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.minutes: dict[int, Counter[str]] = {}
        self.hours: dict[int, Counter[str]] = {}

    def write(self, counts: Counter[tuple[int, str]]) -> None:
        """Merge drained counts."""
        with self._lock:
            for (minute, name), value in counts.items():
                self.minutes.setdefault(minute, Counter())[name] += value
                self.hours.setdefault(minute // 60, Counter())[name] += value
            for table, keep in ((self.minutes, _MEMORY_MINUTES), (self.hours, _MEMORY_HOURS)):
                for old in sorted(table)[:-keep]:
                    del table[old]

    def read(self, *, minutes: list[int], hours: list[int]) -> tuple[list[Any], list[Any]]:
        """Counters for the given minutes and hours (empty where nothing was recorded)."""
        with self._lock:
            return (
                [Counter(self.minutes.get(m, {})) for m in minutes],
                [Counter(self.hours.get(h, {})) for h in hours],
            )


class RedisStore:
    """Aggregates in Redis hashes shared by every worker and node."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def write(self, counts: Counter[tuple[int, str]]) -> None:
        """One pipelined round trip: HINCRBY per field into minute and hour hashes."""
        by_hour: Counter[tuple[int, str]] = Counter()
        pipe = self.client.pipeline(transaction=False)
        minutes: set[int] = set()
        for (minute, name), value in counts.items():
            pipe.hincrby(minute_key(minute), name, value)
            by_hour[minute // 60, name] += value
            minutes.add(minute)
        for (hour, name), value in by_hour.items():
            pipe.hincrby(hour_key(hour), name, value)
        for minute in minutes:
            pipe.expire(minute_key(minute), _MINUTE_TTL)
        for hour in {hour for hour, _ in by_hour}:
            pipe.expire(hour_key(hour), _HOUR_TTL)
        pipe.execute()

    def read(self, *, minutes: list[int], hours: list[int]) -> tuple[list[Any], list[Any]]:
        """Counters for the given minutes and hours, in one pipelined round trip."""
        pipe = self.client.pipeline(transaction=False)
        for minute in minutes:
            pipe.hgetall(minute_key(minute))
        for hour in hours:
            pipe.hgetall(hour_key(hour))
        results = pipe.execute()

        def decode(raw: dict[Any, Any]) -> Counter[str]:
            return Counter(
                {
                    (k.decode() if isinstance(k, bytes) else k): int(v)
                    for k, v in (raw or {}).items()
                }
            )

        decoded = [decode(raw) for raw in results]
        return decoded[: len(minutes)], decoded[len(minutes) :]


_memory_store = MemoryStore()
buffer = TrafficBuffer()
_flusher: dict[str, Any] = {"started": False, "atexit": False}
_flusher_lock = threading.Lock()


def store() -> MemoryStore | RedisStore:
    """Where flushed aggregates go: Redis when configured, else this process."""
    client = redis_client()
    return RedisStore(client) if client is not None else _memory_store


def flush() -> None:
    """Write this process's buffered aggregates now (also run by the flusher thread)."""
    counts = buffer.drain()
    if not counts:
        return
    try:
        store().write(counts)
    except Exception:
        # Redis down: the dashboard loses these seconds; requests were never affected.
        logger.warning("could not flush %d traffic aggregates", len(counts))
        from gateway_project.metrics import count_failure

        count_failure("traffic_flush")


def _flush_forever(interval: float) -> None:
    while True:
        time.sleep(interval)
        try:
            flush()
        except Exception:
            logger.exception("traffic flusher failed")


def _forget_flusher() -> None:
    # A forked child has the buffer but not the thread: start its own on first use.
    _flusher["started"] = False
    buffer.drain()  # the parent flushes what it had; the child must not count it again


os.register_at_fork(after_in_child=_forget_flusher)


def ensure_flusher() -> None:
    """Start this process's flusher thread once (again after a fork)."""
    if _flusher["started"]:
        return
    with _flusher_lock:
        if _flusher["started"]:
            return
        interval = settings.GATEWAY_TRAFFIC_FLUSH_MS / 1000
        threading.Thread(
            target=_flush_forever, args=(interval,), name="traffic-flusher", daemon=True
        ).start()
        if not _flusher["atexit"]:
            atexit.register(flush)  # a graceful worker exit keeps its last seconds
            _flusher["atexit"] = True
        _flusher["started"] = True


def record(
    *, route: str, status: int, rejected: bool, total_ms: float, consumer: str | None
) -> None:
    """Add one answered request to this process's buffer."""
    ensure_flusher()
    buffer.record(
        route=route, status=status, rejected=rejected, total_ms=total_ms, consumer=consumer
    )

"""Live target state (health, ejection, registration leases, breakers), shared via Redis.

Every process keeps a snapshot of the shared hashes, refreshed with ONE pipelined Redis round
trip at most every GATEWAY_STATE_POLL, so the proxy's hot path reads only local dicts. Writes
happen only when something changes (a failure, an ejection, a health flip, a heartbeat). Without
Redis, or while Redis is down, the per-process dicts are the whole truth.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from gateway_project.redis import redis_client, redis_key
from routing.clock import epoch_seconds
from routing.table import CompiledService, CompiledTarget

logger = logging.getLogger("gateway.resilience")

HEALTH = "resilience:health"  # "service url" -> b"1" | b"0"; the hash expires without a checker
EJECTED = "resilience:ejected"  # "service url" -> epoch ms the ejection ends
LEASES = "resilience:leases"  # "service url" -> epoch ms the registration lease ends
ERRORS = "resilience:errors"  # "service url" -> "epoch_ms|what failed"
BREAKERS = "resilience:breakers"  # "route-id service" -> epoch ms the circuit is open until
FAILURES = "resilience:failures"  # "route-id service" -> consecutive failures
PROBE_PREFIX = "resilience:probe:"  # + "route-id service": half-open probes in flight
ALL_HASHES = (HEALTH, EJECTED, LEASES, ERRORS, BREAKERS, FAILURES)
# A failed Redis is retried after this many state polls (at least 1 s), so a dead Redis costs
# one timeout per interval and not one per request.
_REDIS_RETRY_POLLS = 5
_ERROR_TEXT_LIMIT = 200


def target_key(service: str, url: str) -> str:
    """The state key of one target of one service."""
    return f"{service} {url}"


@dataclass(frozen=True)
class Shared:
    """One snapshot of the shared hashes (times in epoch seconds)."""

    health: dict[str, bool] = field(default_factory=dict)
    ejected: dict[str, float] = field(default_factory=dict)
    leases: dict[str, float] = field(default_factory=dict)
    breakers: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    generation: int = 0


@dataclass(frozen=True)
class TargetView:
    """What the console shows about one target."""

    health: str  # healthy | unhealthy | unknown
    ejected_until: float | None
    lease_until: float | None
    last_error: str


def _ms_map(raw: dict[bytes, bytes]) -> dict[str, float]:
    return {k.decode(): int(v) / 1000 for k, v in raw.items()}


class ResilienceState:
    """This process's view of the shared state, plus its own per-process fallback state."""

    def __init__(self) -> None:
        self._shared = Shared()
        self._next_fetch = 0.0
        self._lock = threading.Lock()
        self._redis_down_until = 0.0
        self.local_health: dict[str, bool] = {}
        self.local_ejected: dict[str, float] = {}
        self.local_leases: dict[str, float] = {}
        self.last_errors: dict[str, tuple[float, str]] = {}
        self._failures: dict[str, int] = {}

    # --- Redis access -----------------------------------------------------------------------

    def redis(self) -> Any:
        """The Redis client, or None without Redis or while it is considered down."""
        client = redis_client()
        if client is None or time.monotonic() < self._redis_down_until:
            return None
        return client

    def redis_failed(self, what: str) -> None:
        """Note a Redis failure: fall back to per-process state for a while."""
        if time.monotonic() >= self._redis_down_until:
            logger.warning("Redis unavailable (%s): resilience state is per-process for now", what)
        retry = max(1.0, _REDIS_RETRY_POLLS * settings.GATEWAY_STATE_POLL_MS / 1000)
        self._redis_down_until = time.monotonic() + retry

    def shared(self) -> Shared:
        """The shared snapshot, refreshed at most every GATEWAY_STATE_POLL."""
        if time.monotonic() < self._next_fetch:
            return self._shared
        if not self._lock.acquire(blocking=False):
            return self._shared  # another thread is fetching; the current snapshot will do
        try:
            self._fetch()
        finally:
            self._lock.release()
        return self._shared

    def _fetch(self) -> None:
        self._next_fetch = time.monotonic() + settings.GATEWAY_STATE_POLL_MS / 1000
        client = self.redis()
        if client is None:
            if redis_client() is not None:
                # Health comes from the checker through Redis: unknown now, so fail open.
                self._shared = Shared(
                    ejected=self._shared.ejected,
                    leases=self._shared.leases,
                    breakers=self._shared.breakers,
                    generation=self._shared.generation + 1,
                )
            return
        try:
            pipe = client.pipeline(transaction=False)
            for name in (HEALTH, EJECTED, LEASES, BREAKERS, FAILURES):
                pipe.hgetall(redis_key(name))
            health, ejected, leases, breakers, failures = pipe.execute()
        except Exception:
            self.redis_failed("reading state")
            self._shared = Shared(
                ejected=self._shared.ejected,
                leases=self._shared.leases,
                breakers=self._shared.breakers,
                generation=self._shared.generation + 1,
            )
            return
        self._shared = Shared(
            health={k.decode(): v == b"1" for k, v in health.items()},
            ejected=_ms_map(ejected),
            leases=_ms_map(leases),
            breakers=_ms_map(breakers),
            failures={k.decode(): int(v) for k, v in failures.items()},
            generation=self._shared.generation + 1,
        )

    def refresh_now(self) -> None:
        """Fetch the shared state on the next read instead of waiting for the poll."""
        self._next_fetch = 0.0

    # --- the hot path -----------------------------------------------------------------------

    def available(self, target: CompiledTarget, now: float) -> bool:
        """Whether `target` may get traffic: leased, not unhealthy, not ejected."""
        key = target.key
        shared = self.shared()
        if target.registered:
            lease = max(
                target.lease_until,
                self.local_leases.get(key, 0.0),
                shared.leases.get(key, 0.0),
            )
            if lease < now:
                return False
        healthy = self.local_health.get(key)
        if healthy is None:
            healthy = shared.health.get(key, True)
        if not healthy:
            return False
        ejected = self.local_ejected.get(key) or shared.ejected.get(key)
        return not (ejected and ejected > now)

    def record_attempt(
        self, service: CompiledService, target: CompiledTarget, *, error: str | None
    ) -> None:
        """Passive outlier detection: consecutive failures eject a target for a cool-down."""
        key = target.key
        if error is None:
            if key in self._failures:
                self._failures.pop(key, None)
            return
        now = epoch_seconds()
        self.last_errors[key] = (now, error[:_ERROR_TEXT_LIMIT])
        count = self._failures.get(key, 0) + 1
        threshold = settings.GATEWAY_OUTLIER_CONSECUTIVE_FAILURES
        # Ejecting a service's only target would turn every 502 into a 503: leave that to the
        # circuit breaker and eject only where another target can take the traffic.
        can_eject = threshold and sum(1 for t in service.targets if t.weight > 0) > 1
        until = None
        if can_eject and count >= threshold:
            until = now + settings.GATEWAY_OUTLIER_EJECTION_MS / 1000
            self.local_ejected[key] = until
            self._failures.pop(key, None)
            logger.warning("target %s ejected for %.0fs after %d failures", key, until - now, count)
        else:
            self._failures[key] = count
        client = self.redis()
        if client is None:
            return
        try:
            pipe = client.pipeline(transaction=False)
            pipe.hset(redis_key(ERRORS), key, f"{int(now * 1000)}|{error[:_ERROR_TEXT_LIMIT]}")
            if until is not None:
                pipe.hset(redis_key(EJECTED), key, int(until * 1000))
            pipe.execute()
        except Exception:
            self.redis_failed("recording a failure")

    # --- writers for the checker and the registry -------------------------------------------

    def publish_health(self, results: dict[str, tuple[bool, str | None]], ttl_ms: int) -> None:
        """Store health check results (locally, and in Redis with a TTL when available)."""
        now = epoch_seconds()
        for key, (healthy, error) in results.items():
            self.local_health[key] = healthy
            if error:
                self.last_errors[key] = (now, error[:_ERROR_TEXT_LIMIT])
        client = self.redis()
        if client is None or not results:
            return
        try:
            pipe = client.pipeline(transaction=False)
            pipe.hset(
                redis_key(HEALTH), mapping={k: "1" if ok else "0" for k, (ok, _) in results.items()}
            )
            pipe.pexpire(redis_key(HEALTH), ttl_ms)
            errors = {
                k: f"{int(now * 1000)}|{e[:_ERROR_TEXT_LIMIT]}"
                for k, (_, e) in results.items()
                if e
            }
            if errors:
                pipe.hset(redis_key(ERRORS), mapping=errors)
            pipe.execute()
        except Exception:
            self.redis_failed("publishing health")

    def extend_lease(self, key: str, until: float) -> bool:
        """Extend a registration lease (locally and in Redis); False when Redis failed."""
        self.local_leases[key] = until
        client = self.redis()
        if client is None:
            return redis_client() is None
        try:
            client.hset(redis_key(LEASES), key, int(until * 1000))
        except Exception:
            self.redis_failed("extending a lease")
            return False
        return True

    def drop_target(self, key: str) -> None:
        """Forget every piece of state about a deregistered target."""
        for local in (self.local_health, self.local_ejected, self.local_leases, self.last_errors):
            local.pop(key, None)
        client = self.redis()
        if client is None:
            return
        try:
            pipe = client.pipeline(transaction=False)
            for name in (HEALTH, EJECTED, LEASES, ERRORS):
                pipe.hdel(redis_key(name), key)
            pipe.execute()
        except Exception:
            self.redis_failed("dropping a target")

    # --- the console ------------------------------------------------------------------------

    def describe(self, key: str) -> TargetView:
        """A fresh view of one target for the console (reads Redis directly)."""
        health: bool | None = self.local_health.get(key)
        ejected = self.local_ejected.get(key)
        lease = self.local_leases.get(key)
        error_at, error = self.last_errors.get(key, (0.0, ""))
        client = self.redis()
        if client is not None:
            try:
                pipe = client.pipeline(transaction=False)
                for name in (HEALTH, EJECTED, LEASES, ERRORS):
                    pipe.hget(redis_key(name), key)
                r_health, r_ejected, r_lease, r_error = pipe.execute()
            except Exception:
                self.redis_failed("reading the console view")
            else:
                if health is None and r_health is not None:
                    health = r_health == b"1"
                if r_ejected is not None:
                    ejected = max(ejected or 0.0, int(r_ejected) / 1000)
                if r_lease is not None:
                    lease = max(lease or 0.0, int(r_lease) / 1000)
                if r_error is not None:
                    at, _, text = r_error.decode().partition("|")
                    if int(at) / 1000 > error_at:
                        error_at, error = int(at) / 1000, text
        label = "unknown" if health is None else ("healthy" if health else "unhealthy")
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(error_at)) if error else ""
        return TargetView(
            health=label,
            ejected_until=ejected if ejected and ejected > epoch_seconds() else None,
            lease_until=lease,
            last_error=f"{when}: {error}" if error else "",
        )

    def reset(self) -> None:
        """Forget every local state and snapshot, and clear the shared hashes (tests)."""
        with self._lock:
            self._shared = Shared()
            self._next_fetch = 0.0
            self._redis_down_until = 0.0
            for local in (
                self.local_health,
                self.local_ejected,
                self.local_leases,
                self.last_errors,
                self._failures,
            ):
                local.clear()
        client = redis_client()
        if client is not None:
            try:
                keys = [redis_key(name) for name in ALL_HASHES]
                keys += list(client.scan_iter(redis_key(PROBE_PREFIX + "*")))
                client.delete(*keys)
            except Exception:
                logger.warning("could not clear the shared resilience state")


resilience_state = ResilienceState()

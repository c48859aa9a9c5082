"""Circuit breakers per route and service: closed, open (fail fast), half-open (probes).

Closed costs nothing on the hot path: the open-until times come from the per-process snapshot
(routing.target_state). Redis is written only on a failure, a probe or a state change; each of
those is one atomic Lua script. Without Redis (or while it is down) each process keeps its own
breaker with the same rules.
"""

from __future__ import annotations

import enum
import math
import threading

from django.conf import settings

from gateway_project.redis import redis_key
from routing.clock import epoch_seconds
from routing.resilience_errors import CircuitOpen
from routing.table import CompiledRoute
from routing.target_state import BREAKERS, FAILURES, PROBE_PREFIX, ResilienceState

# Upstream answers that count as failures, besides connection errors and timeouts.
FAILURE_STATUSES = frozenset({502, 503, 504})

# KEYS: failures hash, breakers hash, probe counter. ARGV: field, threshold, now ms, open ms,
# whether this was the half-open probe. Returns the open-until time in ms, or 0 (still closed).
_FAIL = """
local now = tonumber(ARGV[3])
local opened = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if ARGV[5] ~= '1' and opened > now then return opened end
local count = 1
if ARGV[5] ~= '1' then count = redis.call('HINCRBY', KEYS[1], ARGV[1], 1) end
if ARGV[5] == '1' or count >= tonumber(ARGV[2]) then
  local untils = now + tonumber(ARGV[4])
  redis.call('HSET', KEYS[2], ARGV[1], untils)
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[3])
  return untils
end
return 0
"""

# KEYS: breakers hash, probe counter. ARGV: field, now ms, probe limit, probe ttl ms.
# Returns -1 (closed meanwhile), -until (open until then), 1 (you probe), 0 (probes busy).
_PROBE = """
local opened = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if opened == 0 then return -1 end
if tonumber(ARGV[2]) < opened then return -opened end
local n = redis.call('INCR', KEYS[2])
if n == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
if n <= tonumber(ARGV[3]) then return 1 end
return 0
"""

# KEYS: failures hash, breakers hash, probe counter. ARGV: field, whether this was the probe.
_SUCCESS = """
redis.call('HDEL', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('DEL', KEYS[3])
end
return 1
"""


class Ticket(enum.Enum):
    """How a request passed the breaker."""

    CLOSED = "closed"
    PROBE = "probe"


class CircuitBreakers:
    """Every breaker of this process, with its state shared through Redis."""

    def __init__(self, state: ResilienceState) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._open_until: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._probes: dict[str, int] = {}
        # The shared snapshot generation in which this process last cleared a failure count,
        # so a success does not write Redis again until a fresher snapshot shows failures.
        self._cleared_in: dict[str, int] = {}
        self._scripts: dict[str, object] = {}

    def _script(self, client: object, source: str) -> object:
        script = self._scripts.get(source)
        if script is None:
            script = client.register_script(source)  # type: ignore[attr-defined]
            self._scripts[source] = script
        return script

    def admit(self, route: CompiledRoute) -> Ticket | None:
        """Let a request through (None: no breaker), or raise CircuitOpen without contacting."""
        spec = route.circuit_breaker
        if spec is None:
            return None
        key = route.breaker_key
        shared = self._state.shared()
        opened = self._open_until.get(key, 0.0) or shared.breakers.get(key, 0.0)
        if not opened:
            return Ticket.CLOSED
        now = epoch_seconds()
        if now < opened:
            raise _open_error(opened - now)
        return self._probe(route, key, now)

    def _probe(self, route: CompiledRoute, key: str, now: float) -> Ticket:
        limit = settings.GATEWAY_BREAKER_HALF_OPEN_PROBES
        client = self._state.redis()
        if client is not None:
            keys = [redis_key(BREAKERS), redis_key(PROBE_PREFIX + key)]
            ttl_ms = int((route.timeout_seconds + 1) * 1000)
            try:
                answer = int(
                    self._script(client, _PROBE)(  # type: ignore[operator]
                        keys=keys, args=[key, int(now * 1000), limit, ttl_ms]
                    )
                )
            except Exception:
                self._state.redis_failed("breaker probe")
            else:
                if answer == -1:
                    self._open_until.pop(key, None)
                    return Ticket.CLOSED
                if answer < 0:
                    self._open_until[key] = -answer / 1000
                    raise _open_error(-answer / 1000 - now)
                if answer == 0:
                    raise _open_error(1)
                return Ticket.PROBE
        with self._lock:
            if self._probes.get(key, 0) >= limit:
                raise _open_error(1)
            self._probes[key] = self._probes.get(key, 0) + 1
        return Ticket.PROBE

    def record(self, route: CompiledRoute, ticket: Ticket | None, *, failed: bool) -> None:
        """Count the request's outcome: failures open the circuit, a good probe closes it."""
        spec = route.circuit_breaker
        if ticket is None or spec is None:
            return
        key = route.breaker_key
        probe = ticket is Ticket.PROBE
        if failed:
            self._record_failure(route, key, probe=probe)
            return
        shared = self._state.shared()
        with self._lock:
            local_failures = self._failures.pop(key, 0)
            if probe:
                self._open_until.pop(key, None)
                self._probes.pop(key, None)
        shared_failures = (
            shared.failures.get(key, 0) and self._cleared_in.get(key) != shared.generation
        )
        if not (probe or local_failures or shared_failures):
            return  # the steady closed state: nothing to write
        client = self._state.redis()
        if client is None:
            return
        try:
            self._script(client, _SUCCESS)(  # type: ignore[operator]
                keys=[redis_key(FAILURES), redis_key(BREAKERS), redis_key(PROBE_PREFIX + key)],
                args=[key, "1" if probe else "0"],
            )
            self._cleared_in[key] = shared.generation
        except Exception:
            self._state.redis_failed("breaker success")

    def _record_failure(self, route: CompiledRoute, key: str, *, probe: bool) -> None:
        spec = route.circuit_breaker
        assert spec is not None
        now = epoch_seconds()
        open_ms = int(spec.timeout_seconds * 1000)
        with self._lock:
            self._probes.pop(key, None)
            count = self._failures.get(key, 0) + 1
            self._failures[key] = count
            if probe or count >= spec.threshold:
                self._open_until[key] = now + spec.timeout_seconds
                self._failures.pop(key, None)
        client = self._state.redis()
        if client is None:
            return
        try:
            opened = int(
                self._script(client, _FAIL)(  # type: ignore[operator]
                    keys=[redis_key(FAILURES), redis_key(BREAKERS), redis_key(PROBE_PREFIX + key)],
                    args=[key, spec.threshold, int(now * 1000), open_ms, "1" if probe else "0"],
                )
            )
        except Exception:
            self._state.redis_failed("breaker failure")
            return
        with self._lock:
            if opened:
                self._open_until[key] = opened / 1000
                self._failures.pop(key, None)
            elif not probe:
                # Shared counting decides; the local count is only the fallback without Redis.
                self._open_until.pop(key, None)

    def state(self, key: str) -> str:
        """closed, open or half-open for a breaker key, read fresh (for the console)."""
        self._state.refresh_now()
        opened = self._open_until.get(key, 0.0) or self._state.shared().breakers.get(key, 0.0)
        if not opened:
            return "closed"
        return "open" if epoch_seconds() < opened else "half-open"

    def reset(self) -> None:
        """Forget every local breaker (tests)."""
        with self._lock:
            self._open_until.clear()
            self._failures.clear()
            self._probes.clear()
            self._cleared_in.clear()


def _open_error(seconds: float) -> CircuitOpen:
    retry_after = str(max(1, math.ceil(seconds)))
    return CircuitOpen(headers={"Retry-After": retry_after})

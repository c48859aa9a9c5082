"""Where limit counters live: Redis (one Lua call per request) or this process (no Redis)."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import uuid
import weakref
from bisect import bisect_right, insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import hiredis

from gateway_project import forks
from gateway_project.redis import redis_client, redis_key
from gateway_project.socket_bounds import bound_each_call, send_within
from quotas.policies import (
    DAY,
    MONTH,
    SLIDING_WINDOW,
    TOKEN_BUCKET,
    Policy,
    PolicyState,
    Verdict,
    period_end,
    period_id,
    quota_key,
)

LUA_SOURCE = (Path(__file__).with_name("check.lua")).read_text()
LUA_SHA = hashlib.sha1(LUA_SOURCE.encode()).hexdigest()  # noqa: S324 - Redis's script id
USAGE_KEY = "rl:usage"
USAGE_TTL_SECONDS = 7 * 86_400  # pending counts survive a week without a flush
_KIND_CODES = {TOKEN_BUCKET: "tb", SLIDING_WINDOW: "sw", DAY: "day", MONTH: "month"}
_US = 1_000_000
_DAY_US = 86_400 * _US
_QUOTA_GRACE_US = 3600 * _US  # quota counters outlive their period by an hour (console)

Clock = Callable[[], float]


# A thread's connection unused this long is checked before its next send, as the pool checks
# on every checkout: Redis (a restart, its idle `timeout`) or a middlebox may have closed it.
IDLE_CHECK_SECONDS = 1.0


def _drop_if_stale(connection: Any, wire: _Wire | None) -> None:
    """Disconnect a connection the server has closed, or that holds bytes nobody asked for."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    try:
        stale = connection.can_read(timeout=0) or (wire is not None and wire.has_data())
    except (RedisConnectionError, OSError):
        stale = True
    if stale:
        connection.disconnect()


class StoreUnavailable(Exception):
    """The counter store could not be reached or failed; the verdict is unknown."""


@dataclass(frozen=True, slots=True)
class UsageBatch:
    """Pending usage counts claimed for one flush: `{"<day>|<a or r>|<json>": count}`."""

    batch_id: str
    counts: dict[str, int]


class PendingVerdict(Protocol):
    """A check under way: `verdict()` must be called, once, to take its answer."""

    def verdict(self) -> Verdict:
        """The check's verdict; StoreUnavailable when the store failed."""
        ...


class LimitStore(Protocol):
    """What the throttle and the console need from a counter store."""

    def begin_check(
        self, policies: Sequence[Policy], *, consume: bool, usage_field: str = ""
    ) -> PendingVerdict:
        """Start `check`: the caller may do other work before it asks for the verdict."""
        ...

    def check(self, policies: Sequence[Policy], *, consume: bool, usage_field: str = "") -> Verdict:
        """Check every policy; when all pass and `consume`, use one unit of each."""
        ...

    def adjust_quota(self, *, consumer_key: str, kind: str, top_up: int | None) -> None:
        """Reset the current period's count (top_up None) or grant `top_up` more requests."""
        ...

    def claim_usage(self) -> list[UsageBatch]:
        """Take the pending usage counts (and any batch a failed flush left) for flushing."""
        ...

    def usage_flushed(self, batch_id: str) -> None:
        """Forget a batch once it is safely in the database."""
        ...


# --- Redis ------------------------------------------------------------------------------------


class _Wire:
    """A thread's connected Redis socket, used directly for limit checks: a plain socket
    blocks with each send and read bounded in the kernel (no poll() before each,
    socket_bounds; a TLS socket keeps Python's timeout), and replies are parsed by hiredis
    without redis-py's read layers."""

    __slots__ = ("_bound", "_buffer", "_reader", "sock")

    def __init__(self, sock: Any, timeout: float | None) -> None:
        self._bound: float | None = None
        if timeout is not None and type(sock) is socket.socket:
            bound_each_call(sock, timeout)
            sock.settimeout(None)
            self._bound = timeout
        self.sock = sock
        self._reader = hiredis.Reader()
        self._buffer = bytearray(4096)

    def send(self, packed: bytes) -> None:
        """Send one packed command (OSError when it fails or its bound passes)."""
        if self._bound is None:
            self.sock.sendall(packed)
        else:
            send_within(self.sock, packed, self._bound)

    def read(self) -> Any:
        """The next reply; an error reply is returned as a hiredis.ReplyError, not raised.

        RESP3 push messages (maintenance notifications, which redis-py turns on in its
        handshake) are skipped: they answer no command.
        """
        reader = self._reader
        reply = reader.gets()
        while reply is False or type(reply) is hiredis.PushNotification:
            if reply is False:
                size = self.sock.recv_into(self._buffer)
                if not size:
                    raise ConnectionError("Redis closed the connection")
                reader.feed(self._buffer, 0, size)  # type: ignore[arg-type]  # any buffer, as redis-py feeds
            reply = reader.gets()
        return reply

    def has_data(self) -> bool:
        """Whether bytes of a reply nobody asked for are buffered."""
        return bool(self._reader.has_data())


class RedisStore:
    """Counters in Redis: every check is one EVALSHA of check.lua (one round trip)."""

    def __init__(self, client: Any, *, clock: Clock | None = None, prefix: str | None = None):
        self._client = client
        self._clock = clock  # None: Redis TIME, the one clock every gateway node shares
        self._prefix = prefix if prefix is not None else redis_key("")
        self._local = threading.local()
        # Every live thread's connection, for close(); a thread's goes when the thread does.
        self._opened: weakref.WeakSet[Any] = weakref.WeakSet()
        self._opened_lock = threading.Lock()
        pool = client.connection_pool
        # Sentinel: the primary the pool last learnt of (None for a plain pool).
        self._sentinel_pool = pool if hasattr(pool, "master_address") else None

    def _now_arg(self) -> str:
        return "" if self._clock is None else str(round(self._clock() * _US))

    def check(self, policies: Sequence[Policy], *, consume: bool, usage_field: str = "") -> Verdict:
        """Check every policy; when all pass and `consume`, use one unit of each."""
        return self.begin_check(policies, consume=consume, usage_field=usage_field).verdict()

    def begin_check(
        self, policies: Sequence[Policy], *, consume: bool, usage_field: str = ""
    ) -> PendingVerdict:
        """Send the check now; its verdict reads the reply, so the round trip can overlap
        whatever the caller does in between."""
        keys = [self._prefix + policy.key for policy in policies]
        keys.append(self._prefix + USAGE_KEY)
        args: list[Any] = [
            self._now_arg(),
            "1" if consume else "0",
            usage_field,
            USAGE_TTL_SECONDS,
            len(policies),
        ]
        for policy in policies:
            args += [
                _KIND_CODES[policy.kind],
                policy.limit,
                policy.requests,
                policy.period_seconds * _US,
            ]
        try:
            return _ScriptCall(self, policies, keys, args)
        except Exception as error:  # this thread's connection could not be made
            failure = StoreUnavailable(str(error))
            failure.__cause__ = error.with_traceback(None)
            return _Known(failure)

    def _connection(self) -> Any:
        """This thread's connection: made on first use and again in a forked child, checked
        after an idle spell, and dropped when Sentinel has named another primary."""
        local = self._local
        if getattr(local, "generation", None) != forks.generation:
            # Made like the pool's own but outside its count: the store owns it (and it closes
            # when its thread or the store goes), so it never takes a connection others wait for.
            pool = self._client.connection_pool
            local.connection = pool.connection_class(**pool.connection_kwargs)
            local.wire = None
            local.generation = forks.generation
            local.used = 0.0
            local.awaiting = None
            with self._opened_lock:
                self._opened.add(local.connection)
        connection = local.connection
        if local.awaiting is not None:
            # A check was begun and its verdict never asked for: its reply is still on the way.
            local.awaiting = None
            connection.disconnect()
        now = time.monotonic()
        if connection.is_connected:
            if now - local.used > IDLE_CHECK_SECONDS:
                _drop_if_stale(connection, local.wire)
            sentinel = self._sentinel_pool
            if sentinel is not None:
                primary = sentinel.master_address
                if primary is not None and (connection.host, connection.port) != primary:
                    connection.disconnect()  # a failover: the next send asks the sentinels
        local.used = now
        return connection

    def close(self) -> None:
        """Close every thread's connection; a later check opens anew."""
        with self._opened_lock:
            opened = list(self._opened)
            self._opened = weakref.WeakSet()
        for connection in opened:
            if connection.pid == os.getpid():  # a parent's sockets are not this process's
                connection.disconnect()
        self._local = threading.local()

    def _wire(self, connection: Any) -> _Wire:
        """This thread's connection as a wire, connected first when it is not."""
        sock = connection._sock  # None while not connected (redis-py's is_connected)
        if sock is None:
            # connect() as the pool would: a Sentinel-managed connection asks the sentinels for
            # the primary there, and the handshake (AUTH, SELECT) runs on redis-py's own path.
            connection.connect()
            sock = connection._sock
        wire = getattr(self._local, "wire", None)  # None after a close() from another thread
        if wire is None or wire.sock is not sock:
            wire = self._local.wire = _Wire(sock, connection.socket_timeout)
        return wire

    def _send(self, wire: _Wire, command: tuple[Any, ...]) -> None:
        wire.send(hiredis.pack_command(command))

    def _send_script(self, wire: _Wire, keys: list[str], args: list[Any]) -> None:
        self._send(wire, ("EVALSHA", LUA_SHA, len(keys), *keys, *args))

    def _read_script(self, wire: _Wire, keys: list[str], args: list[Any]) -> Any:
        reply = wire.read()
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            # EVAL runs the script and puts it back in Redis's script cache for the next EVALSHA.
            self._send(wire, ("EVAL", LUA_SOURCE, len(keys), *keys, *args))
            reply = wire.read()
        if isinstance(reply, hiredis.ReplyError):
            raise reply
        return reply

    def _now_us(self) -> int:
        if self._clock is not None:
            return round(self._clock() * _US)
        seconds, micros = self._client.time()
        return int(seconds) * _US + int(micros)

    def adjust_quota(self, *, consumer_key: str, kind: str, top_up: int | None) -> None:
        """Reset the current period's count (top_up None) or grant `top_up` more requests."""
        try:
            now = self._now_us()
            key = f"{self._prefix}{quota_key(consumer_key, kind)}:{period_id(kind, now / _US)}"
            if top_up is None:
                self._client.delete(key)
                return
            expire_ms = int(period_end(kind, now / _US) * 1000) + _QUOTA_GRACE_US // 1000
            pipe = self._client.pipeline(transaction=True)
            pipe.decrby(key, top_up)
            pipe.pexpireat(key, expire_ms)
            pipe.execute()
        except Exception as error:
            raise StoreUnavailable(str(error)) from error

    def claim_usage(self) -> list[UsageBatch]:
        """Rename the pending hash to a batch key (atomic), plus batches left by a failed flush."""
        pending = self._prefix + USAGE_KEY
        claimed = f"{pending}:batch:{uuid.uuid4().hex}"
        try:
            try:
                self._client.rename(pending, claimed)
            except Exception as error:
                if "no such key" not in str(error).lower():
                    raise
            batches = []
            for key in self._client.scan_iter(match=f"{pending}:batch:*", count=100):
                name = key.decode() if isinstance(key, bytes) else str(key)
                raw = self._client.hgetall(name)
                counts = {_text(field): int(value) for field, value in raw.items()}
                batches.append(UsageBatch(name.rsplit(":", 1)[1], counts))
            return batches
        except Exception as error:
            raise StoreUnavailable(str(error)) from error

    def usage_flushed(self, batch_id: str) -> None:
        """Delete a flushed batch."""
        try:
            self._client.delete(f"{self._prefix}{USAGE_KEY}:batch:{batch_id}")
        except Exception as error:
            raise StoreUnavailable(str(error)) from error


class _ScriptCall:
    """One EVALSHA of check.lua on this thread's own connection, sent when made; `verdict()`
    reads its reply.

    The limit check runs on every request, so it goes to the connection's socket directly
    (a `_Wire`) instead of through redis-py's command layer (Script.__call__, execute_command's
    per-command closures, observability hooks and argument inspection), its pool (a lock,
    gauges and a poll() per checkout to see that no stale reply waits) or its read layers,
    keeping what matters: a dropped connection on a failed send or read, and EVAL when Redis
    lost the script (a restart or a failover). A check is tried once: the gateway's client
    has no retries (a dead Redis costs one timeout, not several).
    """

    __slots__ = (
        "_args",
        "_connection",
        "_keys",
        "_policies",
        "_send_error",
        "_store",
        "_taken",
        "_wire",
    )

    def __init__(
        self, store: RedisStore, policies: Sequence[Policy], keys: list[str], args: list[Any]
    ) -> None:
        self._store = store
        self._policies = policies
        self._keys = keys
        self._args = args
        self._taken = False
        self._wire: _Wire | None = None
        self._send_error: Exception | None = None
        connection = self._connection = store._connection()
        # Marked before the send and cleared once the reply is read: if anything (an
        # interrupt included) stops this check in between, the thread's next check drops the
        # connection instead of reading this reply as its own.
        store._local.awaiting = self
        try:
            self._wire = store._wire(connection)
            store._send_script(self._wire, keys, args)
        except Exception as error:  # raised where the verdict is read
            self._send_error = error.with_traceback(None)  # its frames would hold this call

    def verdict(self) -> Verdict:
        """Read the reply (EVAL when Redis lost the script); StoreUnavailable on a failure."""
        if self._taken:
            raise RuntimeError("a limit check's verdict is read once")
        self._taken = True
        store = self._store
        local = store._local
        if getattr(local, "awaiting", None) is not self:
            # Another check began on this thread since, or close() ran: the reply was dropped.
            raise StoreUnavailable("the check's reply was dropped")
        try:
            if self._send_error is not None:
                raise self._send_error
            assert self._wire is not None  # set whenever the send raised nothing
            raw = store._read_script(self._wire, self._keys, self._args)
            verdict = _verdict(self._policies, [int(value) for value in raw])
        except BaseException as error:
            # A reply may be left unread (an interrupted read, a reply that did not parse):
            # the next check would read it as its own. A new socket starts clean.
            self._connection.disconnect()
            local.awaiting = None
            if isinstance(error, Exception):  # OSError, an error reply, a reply of another shape
                raise StoreUnavailable(str(error)) from error
            raise
        local.awaiting = None
        return verdict


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _verdict(policies: Sequence[Policy], raw: list[int]) -> Verdict:
    states = []
    for index, policy in enumerate(policies):
        remaining, reset_us, retry_us = raw[2 + index * 3 : 5 + index * 3]
        states.append(
            PolicyState(
                policy=policy,
                remaining=remaining,
                reset_seconds=max(0, reset_us) / _US,
                retry_after_seconds=None if retry_us < 0 else retry_us / _US,
            )
        )
    return Verdict(allowed=bool(raw[0]), states=tuple(states), now=raw[1] / _US)


# --- In-process -------------------------------------------------------------------------------


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, slots=True)
class _Known:
    """A check whose outcome is already known: its verdict, or the store's failure."""

    outcome: Verdict | StoreUnavailable

    def verdict(self) -> Verdict:
        """The verdict, or StoreUnavailable."""
        if isinstance(self.outcome, StoreUnavailable):
            raise self.outcome
        return self.outcome


class MemoryStore:
    """Counters in this process, with the Redis store's exact semantics, under one lock."""

    _SWEEP_EVERY_US = 60 * _US

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[int, int]] = {}  # key -> (tokens, at)
        self._logs: dict[str, list[int]] = {}  # key -> sorted request times
        self._counts: dict[str, int] = {}  # quota key with period -> used
        self._expires: dict[str, int] = {}
        self._usage: dict[str, int] = {}
        self._batches: dict[str, dict[str, int]] = {}  # claimed, not yet flushed
        self._next_sweep = 0

    def begin_check(
        self, policies: Sequence[Policy], *, consume: bool, usage_field: str = ""
    ) -> PendingVerdict:
        """Check at once: in this process there is no round trip to overlap."""
        return _Known(self.check(policies, consume=consume, usage_field=usage_field))

    def check(self, policies: Sequence[Policy], *, consume: bool, usage_field: str = "") -> Verdict:
        """Check every policy; when all pass and `consume`, use one unit of each."""
        now = round(self._clock() * _US)
        with self._lock:
            self._sweep(now)
            reads = [self._read(policy, now) for policy in policies]
            allowed = all(read["ok"] for read in reads)
            if allowed and consume:
                states = [self._consume(p, r, now) for p, r in zip(policies, reads, strict=True)]
            else:
                states = [self._state(p, r, now) for p, r in zip(policies, reads, strict=True)]
            if consume and usage_field:
                field = f"{now // _DAY_US}|{'a' if allowed else 'r'}|{usage_field}"
                self._usage[field] = self._usage.get(field, 0) + 1
        return Verdict(allowed=allowed, states=tuple(states), now=now / _US)

    def _read(self, policy: Policy, now: int) -> dict[str, Any]:
        if policy.kind == TOKEN_BUCKET:
            unit = policy.period_seconds * _US
            cap = policy.limit * unit
            tokens = cap
            if policy.key in self._buckets:
                stored, at = self._buckets[policy.key]
                elapsed = min(max(0, now - at), _ceil_div(cap, policy.requests))
                tokens = min(cap, stored + elapsed * policy.requests)
            return {"ok": tokens >= unit, "tokens": tokens, "unit": unit, "cap": cap}
        if policy.kind == SLIDING_WINDOW:
            log = self._logs.get(policy.key, [])
            window = log[bisect_right(log, now - policy.period_seconds * _US) :]
            return {"ok": len(window) < policy.limit, "window": window}
        key = f"{policy.key}:{period_id(policy.kind, now / _US)}"
        used = self._counts.get(key, 0)
        ends = int(period_end(policy.kind, now / _US)) * _US
        return {"ok": used < policy.limit, "key": key, "used": used, "ends": ends}

    def _consume(self, policy: Policy, read: dict[str, Any], now: int) -> PolicyState:
        if policy.kind == TOKEN_BUCKET:
            unit, cap = read["unit"], read["cap"]
            tokens = read["tokens"] - unit
            self._buckets[policy.key] = (tokens, now)
            to_full = _ceil_div(cap - tokens, policy.requests)
            self._expires[policy.key] = now + to_full + 1000
            remaining = tokens // unit
            reset = _ceil_div(unit - tokens, policy.requests) if remaining == 0 else to_full
        elif policy.kind == SLIDING_WINDOW:
            window = list(read["window"])
            insort(window, now)
            self._logs[policy.key] = window
            period = policy.period_seconds * _US
            self._expires[policy.key] = now + period + 1000
            remaining = policy.limit - len(window)
            reset = window[0] + period - now if remaining == 0 else period
        else:
            self._counts[read["key"]] = read["used"] + 1
            self._expires[read["key"]] = read["ends"] + _QUOTA_GRACE_US
            remaining = policy.limit - read["used"] - 1
            reset = read["ends"] - now
        return PolicyState(policy, max(0, remaining), max(0, reset) / _US, None)

    def _state(self, policy: Policy, read: dict[str, Any], now: int) -> PolicyState:
        if policy.kind == TOKEN_BUCKET:
            unit, cap, tokens = read["unit"], read["cap"], read["tokens"]
            remaining = tokens // unit
            to_next = _ceil_div(unit - tokens, policy.requests)
            reset = to_next if remaining == 0 else _ceil_div(cap - tokens, policy.requests)
            retry = to_next
        elif policy.kind == SLIDING_WINDOW:
            window = read["window"]
            period = policy.period_seconds * _US
            remaining = policy.limit - len(window)
            to_next = window[0] + period - now if window else 0
            newest = window[-1] + period - now if window else 0
            reset = to_next if remaining <= 0 else newest
            retry = to_next
        else:
            remaining = policy.limit - read["used"]
            reset = retry = read["ends"] - now
        retry_after = None if read["ok"] else max(0, retry) / _US
        return PolicyState(policy, max(0, remaining), max(0, reset) / _US, retry_after)

    def _sweep(self, now: int) -> None:
        """Drop expired counters now and then, as Redis TTLs would."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._SWEEP_EVERY_US
        for key in [key for key, at in self._expires.items() if at <= now]:
            del self._expires[key]
            self._buckets.pop(key, None)
            self._logs.pop(key, None)
            self._counts.pop(key, None)

    def adjust_quota(self, *, consumer_key: str, kind: str, top_up: int | None) -> None:
        """Reset the current period's count (top_up None) or grant `top_up` more requests."""
        now = round(self._clock() * _US)
        key = f"{quota_key(consumer_key, kind)}:{period_id(kind, now / _US)}"
        with self._lock:
            if top_up is None:
                self._counts.pop(key, None)
                return
            self._counts[key] = self._counts.get(key, 0) - top_up
            self._expires[key] = int(period_end(kind, now / _US)) * _US + _QUOTA_GRACE_US

    def claim_usage(self) -> list[UsageBatch]:
        """Swap out the pending counts; batches a failed flush left are offered again."""
        with self._lock:
            if self._usage:
                self._batches[uuid.uuid4().hex] = self._usage
                self._usage = {}
            return [UsageBatch(batch_id, dict(c)) for batch_id, c in self._batches.items()]

    def usage_flushed(self, batch_id: str) -> None:
        """Forget a flushed batch."""
        with self._lock:
            self._batches.pop(batch_id, None)


# --- The process's store ----------------------------------------------------------------------

_store: LimitStore | None = None
_store_lock = threading.Lock()


def limit_store() -> LimitStore:
    """The process's store: Redis when REDIS_URL is set, else in-process."""
    global _store
    store = _store
    if store is not None:
        return store
    with _store_lock:
        if _store is None:
            client = redis_client()
            _store = RedisStore(client) if client is not None else MemoryStore()
        return _store


def use_store(store: LimitStore | None) -> None:
    """Replace the process's store (tests); None goes back to the configured one."""
    global _store
    with _store_lock:
        _store = store

"""`cache`: 200 answers to GET/HEAD kept for a while, shared by workers and nodes through Redis.

Keys hold the config version (so any config change leaves old entries unread until they
expire), the route, method, normalized path, query, Host, the consumer when authenticated and
the values of the headers the answer `Vary`s on. The entry at the base key is either the
answer itself (no Vary: one Redis round trip) or the list of Vary'd names pointing at the
variant's key (two round trips).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway_project.redis import redis_client, redis_key
from routing.compiled_policies import CachePolicy

logger = logging.getLogger("gateway.cache")

MAX_ENTRY_BYTES = 1024 * 1024
CACHEABLE_METHODS = frozenset({"GET", "HEAD"})
# Headers never stored with an answer: per-request ones and those the gateway adds on the way out.
_NOT_STORED = frozenset({"x-request-id", "x-cache", "age", "set-cookie", "date"})
_REFUSING_DIRECTIVES = frozenset({"no-store", "private", "no-cache"})
_MAX_VARY_NAMES = 16
_ANSWER = b"A"
_VARY = b"V"
_PURGE_SCAN_LIMIT = 100_000
# What an in-process entry costs beyond its key and value (dict slot, tuple, float, list node):
# counted so that many tiny entries cannot hold far more memory than the budget says.
_ENTRY_OVERHEAD_BYTES = 256


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A stored answer: what the client gets on a HIT."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stored_at: float
    age_at_store: int = 0

    def age(self, now: float | None = None) -> int:
        """Seconds since the answer left its origin (the Age header's value)."""
        return self.age_at_store + max(0, int((now or time.time()) - self.stored_at))

    def encode(self) -> bytes:
        """The entry as bytes (a JSON head, then the body)."""
        head = json.dumps(
            {"s": self.status, "h": self.headers, "t": self.stored_at, "a": self.age_at_store}
        ).encode()
        return _ANSWER + len(head).to_bytes(4, "big") + head + self.body

    @classmethod
    def decode(cls, data: bytes) -> CachedAnswer:
        """The entry from `encode`'s bytes; ValueError when they are not one."""
        size = int.from_bytes(data[1:5], "big")
        head = json.loads(data[5 : 5 + size])
        return cls(
            status=int(head["s"]),
            headers=tuple((str(n), str(v)) for n, v in head["h"]),
            body=data[5 + size :],
            stored_at=float(head["t"]),
            age_at_store=int(head["a"]),
        )


class CacheStore(Protocol):
    """Where entries live: Redis (shared) or this process's memory."""

    def get(self, key: str) -> bytes | None:
        """The value at `key`, or None."""

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Keep `value` at `key` for `ttl_seconds`."""

    def purge(self, prefix: str) -> int:
        """Delete every key starting with `prefix`; how many went."""


class RedisCacheStore:
    """Entries in Redis, shared by every worker and node; a Redis failure reads as a miss."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def get(self, key: str) -> bytes | None:
        """The value at `key`, or None (also when Redis fails)."""
        try:
            value = self._client.get(redis_key(key))
        except Exception:
            logger.warning("response cache: Redis unavailable, lookup treated as a miss")
            return None
        return bytes(value) if value is not None else None

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Keep `value` for `ttl_seconds` (milliseconds precision); a failure is only logged."""
        try:
            self._client.set(redis_key(key), value, px=max(1, int(ttl_seconds * 1000)))
        except Exception:
            logger.warning("response cache: Redis unavailable, answer not stored")

    def purge(self, prefix: str) -> int:
        """Delete the keys under `prefix` (a bounded SCAN)."""
        removed = 0
        batch: list[Any] = []
        for index, key in enumerate(self._client.scan_iter(redis_key(prefix) + "*", count=1000)):
            if index >= _PURGE_SCAN_LIMIT:
                break
            batch.append(key)
            if len(batch) >= 500:
                removed += int(self._client.delete(*batch))
                batch = []
        if batch:
            removed += int(self._client.delete(*batch))
        return removed


class MemoryCacheStore:
    """Entries in this process (no Redis): least recently used go first past the byte budget."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        """The value at `key` unless expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Keep `value` for `ttl_seconds`, evicting the least recently used past the budget."""
        with self._lock:
            self._drop(key)
            self._entries[key] = (time.monotonic() + ttl_seconds, value)
            self._bytes += _entry_cost(key, value)
            while self._bytes > self._max_bytes and self._entries:
                self._drop(next(iter(self._entries)))

    def purge(self, prefix: str) -> int:
        """Delete the keys under `prefix`."""
        with self._lock:
            keys = [key for key in self._entries if key.startswith(prefix)]
            for key in keys:
                self._drop(key)
            return len(keys)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= _entry_cost(key, entry[1])


def _entry_cost(key: str, value: bytes) -> int:
    return len(key) + len(value) + _ENTRY_OVERHEAD_BYTES


_memory_store = MemoryCacheStore()


def cache_store() -> CacheStore:
    """Redis when configured, else this process's memory."""
    client = redis_client()
    return RedisCacheStore(client) if client is not None else _memory_store


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def route_prefix(route_id: int) -> str:
    """The key prefix of every entry of a route (what a purge deletes)."""
    return f"rcache:{route_id}:"


def base_key(
    *,
    version: int,
    route_id: int,
    method: str,
    path: str,
    query: str,
    host: str,
    consumer: str | None,
) -> str:
    """The key of a request before Vary: everything the contract keys on but the Vary'd headers."""
    return route_prefix(route_id) + _digest(
        str(version), method, path, query, host.lower(), consumer or "-"
    )


def _variant_key(base: str, names: Iterable[str], headers: Mapping[str, str]) -> str:
    values = [f"{name}={headers.get(name, '')}" for name in names]
    return f"{base}:{_digest(*values)}"


def vary_names(value: str | None) -> tuple[str, ...] | None:
    """The header names an answer Varys on (sorted, lower-case); None when it cannot be kept."""
    if not value:
        return ()
    names = sorted({name.strip().lower() for name in value.split(",") if name.strip()})
    if "*" in names or len(names) > _MAX_VARY_NAMES:
        return None
    return tuple(names)


def storable_ttl(
    policy: CachePolicy, *, status: int, headers: Mapping[str, str], has_set_cookie: bool
) -> float | None:
    """For how long an answer may be kept (None: not at all). `headers` keyed by lower-case."""
    if status != 200 or has_set_cookie:
        return None
    ttl = policy.ttl_seconds
    control = headers.get("cache-control", "")
    directives = {}
    for part in control.split(","):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if _REFUSING_DIRECTIVES & directives.keys():
        return None
    limit = directives.get("s-maxage", directives.get("max-age"))
    if limit is not None:
        if not limit.isdigit():
            return None  # an unreadable lifetime is no permission to keep it
        # Already `Age` seconds old when it left the upstream: only the rest of it is fresh.
        ttl = min(ttl, float(limit) - age_seconds(headers.get("age")))
    return ttl if ttl > 0 else None


def age_seconds(value: str | None) -> int:
    """An Age header's seconds (0 when absent or unreadable)."""
    return int(value) if value and value.isdigit() and len(value) < 10 else 0


def lookup(store: CacheStore, base: str, request_headers: Mapping[str, str]) -> CachedAnswer | None:
    """The stored answer for a request, or None. `request_headers` keyed by lower-case name."""
    data = store.get(base)
    if data is not None and data[:1] == _VARY:
        names = tuple(json.loads(data[1:]))
        data = store.get(_variant_key(base, names, request_headers))
    if data is None or data[:1] != _ANSWER:
        return None
    try:
        return CachedAnswer.decode(data)
    except (ValueError, KeyError, TypeError):
        logger.warning("response cache: unreadable entry ignored")
        return None


def store_answer(
    store: CacheStore,
    base: str,
    *,
    answer: CachedAnswer,
    vary: tuple[str, ...],
    request_headers: Mapping[str, str],
    ttl_seconds: float,
) -> None:
    """Keep `answer` under `base` (and its variant when it Varys)."""
    if len(answer.body) > MAX_ENTRY_BYTES:
        return
    if vary:
        store.set(base, _VARY + json.dumps(list(vary)).encode(), ttl_seconds)
        store.set(_variant_key(base, vary, request_headers), answer.encode(), ttl_seconds)
    else:
        store.set(base, answer.encode(), ttl_seconds)


def stored_headers(
    items: Iterable[tuple[str, str]], *, without_cors: bool = False
) -> tuple[tuple[str, str], ...]:
    """An answer's headers as kept: without the per-request ones (and Access-Control-*)."""
    return tuple(
        (name, value)
        for name, value in items
        if name.lower() not in _NOT_STORED
        and not (without_cors and name.lower().startswith("access-control-"))
    )


def collect_body(chunks: Iterable[bytes], on_complete: Any) -> Iterator[bytes]:
    """Pass a streamed body through; call `on_complete(body)` at its end if it stayed <= 1 MiB."""
    kept: list[bytes] | None = []
    size = 0
    for chunk in chunks:
        if kept is not None:
            size += len(chunk)
            if size > MAX_ENTRY_BYTES:
                kept = None
            else:
                kept.append(chunk)
        yield chunk
    if kept is not None:
        on_complete(b"".join(kept))


def describe(policy: CachePolicy) -> str:
    """The policy in one line, for explain."""
    return f"ttl {policy.ttl_seconds:g}s (or the upstream's max-age when shorter)"


def purge_route(route_id: int) -> int:
    """Delete every cached answer of a route (the console's purge action); how many went."""
    return cache_store().purge(route_prefix(route_id))

"""cache: what is kept, for how long, under which key; Redis-shared and in-process stores."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gateway_project.redis import redis_client
from routing.compiled_policies import CachePolicy
from routing.policies.cache import (
    MAX_ENTRY_BYTES,
    CachedAnswer,
    CacheStore,
    MemoryCacheStore,
    RedisCacheStore,
    base_key,
    collect_body,
    lookup,
    purge_route,
    storable_ttl,
    store_answer,
    vary_names,
)
from tests.support.waiting import wait_until

POLICY = CachePolicy(ttl_seconds=30)


def key(**overrides: object) -> str:
    parts: dict[str, object] = {
        "version": 1,
        "route_id": 7,
        "method": "GET",
        "path": "/api/items",
        "query": "a=1",
        "host": "gw.example",
        "consumer": None,
    }
    parts.update(overrides)
    return base_key(**parts)  # type: ignore[arg-type]


def answer(body: bytes = b"hello") -> CachedAnswer:
    return CachedAnswer(
        status=200, headers=(("Content-Type", "text/plain"),), body=body, stored_at=time.time()
    )


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[CacheStore]:
    if request.param == "memory":
        yield MemoryCacheStore()
        return
    client = redis_client()
    if client is None:
        pytest.skip("REDIS_URL is not set")
    redis_store = RedisCacheStore(client)
    yield redis_store
    redis_store.purge("rcache:7:")


def test_stored_answer_is_found_again(store: CacheStore) -> None:
    store_answer(store, key(), answer=answer(), vary=(), request_headers={}, ttl_seconds=30)
    found = lookup(store, key(), {})
    assert found is not None
    assert (found.status, found.body, found.headers) == (
        200,
        b"hello",
        (("Content-Type", "text/plain"),),
    )


@pytest.mark.parametrize(
    "change",
    [
        {"consumer": "user:1"},
        {"method": "HEAD"},
        {"path": "/api/other"},
        {"query": "a=2"},
        {"host": "other.example"},
        {"version": 2},
        {"route_id": 8},
    ],
)
def test_every_keyed_part_separates_entries(store: CacheStore, change: dict[str, object]) -> None:
    store_answer(store, key(), answer=answer(), vary=(), request_headers={}, ttl_seconds=30)
    assert lookup(store, key(**change), {}) is None


def test_consumers_do_not_share_entries(store: CacheStore) -> None:
    alice, bob = key(consumer="user:alice"), key(consumer="user:bob")
    store_answer(
        store, alice, answer=answer(b"alice's"), vary=(), request_headers={}, ttl_seconds=30
    )
    assert lookup(store, bob, {}) is None
    found = lookup(store, alice, {})
    assert found is not None and found.body == b"alice's"


def test_vary_header_values_are_part_of_the_key(store: CacheStore) -> None:
    english = {"accept-language": "en"}
    store_answer(
        store,
        key(),
        answer=answer(b"hello"),
        vary=("accept-language",),
        request_headers=english,
        ttl_seconds=30,
    )
    assert lookup(store, key(), {"accept-language": "de"}) is None
    assert lookup(store, key(), {}) is None
    found = lookup(store, key(), english)
    assert found is not None and found.body == b"hello"


def test_purge_removes_every_entry_of_the_route(store: CacheStore) -> None:
    store_answer(store, key(), answer=answer(), vary=(), request_headers={}, ttl_seconds=30)
    store_answer(
        store, key(path="/b"), answer=answer(), vary=(), request_headers={}, ttl_seconds=30
    )
    assert store.purge("rcache:7:") >= 2
    assert lookup(store, key(), {}) is None
    assert lookup(store, key(path="/b"), {}) is None


def test_purge_route_uses_the_configured_store(settings: object) -> None:
    from routing.policies.cache import cache_store

    store = cache_store()
    store_answer(store, key(), answer=answer(), vary=(), request_headers={}, ttl_seconds=30)
    assert purge_route(7) >= 1
    assert lookup(store, key(), {}) is None


def test_entries_expire_after_their_ttl() -> None:
    store = MemoryCacheStore()
    store_answer(store, key(), answer=answer(), vary=(), request_headers={}, ttl_seconds=0.001)
    wait_until(lambda: lookup(store, key(), {}) is None, interval=0.01, message="never expired")


def test_oversized_answer_is_not_kept(store: CacheStore) -> None:
    big = answer(b"x" * (MAX_ENTRY_BYTES + 1))
    store_answer(store, key(), answer=big, vary=(), request_headers={}, ttl_seconds=30)
    assert lookup(store, key(), {}) is None


def test_memory_store_evicts_least_recently_used_past_its_budget() -> None:
    store = MemoryCacheStore(max_bytes=3000)
    for index in range(5):
        store.set(f"k{index}", b"x" * 1000, 30)
    assert store.get("k0") is None
    assert store.get("k4") is not None


def test_memory_store_budget_holds_for_many_tiny_entries() -> None:
    # An attacker varying the query fills the store with empty answers: the budget must count
    # what each entry really costs (its key and bookkeeping), not only the answer's bytes.
    import tracemalloc

    budget = 1024 * 1024
    store = MemoryCacheStore(max_bytes=budget)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(50_000):
            store.set(key(query=f"q={index}"), b"A", 30)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 2 * budget, f"{grown} bytes held for a {budget}-byte budget"
    assert store.get(key(query="q=49999")) == b"A"  # the newest entries are still there


@pytest.mark.parametrize(
    ("status", "headers", "cookie", "expected"),
    [
        (200, {}, False, 30),
        (200, {"cache-control": "max-age=10"}, False, 10),
        (200, {"cache-control": "public, s-maxage=5, max-age=100"}, False, 5),
        (200, {"cache-control": "max-age=3600"}, False, 30),
        (200, {"cache-control": "no-store"}, False, None),
        (200, {"cache-control": "private, max-age=60"}, False, None),
        (200, {"cache-control": "no-cache"}, False, None),
        (200, {"cache-control": "max-age=0"}, False, None),
        (200, {"cache-control": "max-age=abc"}, False, None),
        # The upstream's answer is already `age` seconds old: only the rest of its lifetime is left.
        (200, {"cache-control": "max-age=60", "age": "50"}, False, 10),
        (200, {"cache-control": "max-age=60", "age": "60"}, False, None),
        (200, {"cache-control": "max-age=60", "age": "junk"}, False, 30),
        (200, {}, True, None),
        (201, {}, False, None),
        (404, {}, False, None),
        (500, {}, False, None),
    ],
)
def test_what_is_kept_and_for_how_long(
    status: int, headers: dict[str, str], cookie: bool, expected: float | None
) -> None:
    assert storable_ttl(POLICY, status=status, headers=headers, has_set_cookie=cookie) == expected


def test_vary_star_or_too_many_names_cannot_be_kept() -> None:
    assert vary_names("*") is None
    assert vary_names(", ".join(f"x-h{i}" for i in range(20))) is None
    assert vary_names("Accept-Encoding, accept-language") == ("accept-encoding", "accept-language")
    assert vary_names(None) == ()


def test_collect_body_hands_over_small_bodies_only() -> None:
    got: list[bytes] = []
    assert list(collect_body([b"ab", b"cd"], got.append)) == [b"ab", b"cd"]
    assert got == [b"abcd"]
    got.clear()
    chunks = [b"x" * (MAX_ENTRY_BYTES // 2 + 1)] * 2
    assert sum(len(c) for c in collect_body(chunks, got.append)) == len(chunks[0]) * 2
    assert got == []


def test_age_counts_from_the_answer_origin() -> None:
    stored = CachedAnswer(status=200, headers=(), body=b"", stored_at=100.0, age_at_store=5)
    assert stored.age(now=110.5) == 15


def test_corrupt_entry_is_a_miss() -> None:
    store = MemoryCacheStore()
    store.set(key(), b"A\x00\x00\x00\x09not json!", 30)
    assert lookup(store, key(), {}) is None

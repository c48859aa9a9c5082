"""Usage history: counted in the store on the request path, rolled into the database later."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from prometheus_client import REGISTRY

from gateway_project.redis import redis_client, redis_key
from quotas.flusher import _Flusher, flush_once
from quotas.models import Usage
from quotas.services import usage_flush
from quotas.store import StoreUnavailable, use_store
from tests.quotas.conftest import consumer_header, needs_redis


def rows() -> dict[tuple[str, str], tuple[int, int]]:
    return {
        (usage.consumer_name, usage.route_name): (usage.requests, usage.rejected)
        for usage in Usage.objects.all()
    }


def test_usage_is_rolled_into_daily_rows_per_consumer_and_route(
    client, make_route, upstream, consumers
):
    make_route("/api/v1/a/**", upstream.url, rate_limit_requests=2, rate_limit_period="hour")
    make_route("/api/v1/b/**", upstream.url)
    alice = consumer_header("user", "1", "alice")
    bob = consumer_header("client", "2", "bob")
    for _ in range(3):
        client.get("/api/v1/a/echo", HTTP_X_TEST_CONSUMER=alice)
    client.get("/api/v1/a/echo", HTTP_X_TEST_CONSUMER=bob)
    client.get("/api/v1/b/echo")
    client.get("/api/v1/b/echo", HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert Usage.objects.count() == 0  # nothing is written on the request path

    assert usage_flush() == 3
    assert rows() == {
        ("alice", "ANY /api/v1/a/**"): (2, 1),
        ("bob", "ANY /api/v1/a/**"): (1, 0),
        ("anonymous", "ANY /api/v1/b/**"): (2, 0),
    }
    alice_row = Usage.objects.get(consumer_name="alice")
    assert (alice_row.consumer_kind, alice_row.consumer_id) == ("user", "1")
    assert alice_row.day == timezone.now().date()


def test_a_second_flush_adds_only_what_came_since(client, make_route, upstream):
    make_route("/api/v1/b/**", upstream.url)
    client.get("/api/v1/b/echo")
    usage_flush()
    assert usage_flush() == 0
    client.get("/api/v1/b/echo")
    usage_flush()
    assert rows() == {("anonymous", "ANY /api/v1/b/**"): (2, 0)}


def test_a_batch_written_before_a_crash_is_not_counted_twice(
    client, make_route, upstream, fresh_limit_store, monkeypatch
):
    make_route("/api/v1/b/**", upstream.url)
    client.get("/api/v1/b/echo")

    def crash(batch_id: str) -> None:
        raise StoreUnavailable("crashed after the database commit")

    with monkeypatch.context() as patch:
        patch.setattr(fresh_limit_store, "usage_flushed", crash)
        with pytest.raises(StoreUnavailable):
            usage_flush()
    assert rows() == {("anonymous", "ANY /api/v1/b/**"): (1, 0)}
    usage_flush()  # the batch is offered again, recognised, and dropped
    assert rows() == {("anonymous", "ANY /api/v1/b/**"): (1, 0)}
    assert fresh_limit_store.claim_usage() == []


def test_flush_usage_command_writes_the_pending_counts(client, make_route, upstream, capsys):
    make_route("/api/v1/b/**", upstream.url)
    client.get("/api/v1/b/echo")
    call_command("flush_usage")
    assert "1 row(s) written" in capsys.readouterr().out
    assert rows() == {("anonymous", "ANY /api/v1/b/**"): (1, 0)}


@needs_redis
def test_only_one_node_flushes_at_a_time(client, make_route, upstream):
    make_route("/api/v1/b/**", upstream.url)
    client.get("/api/v1/b/echo")
    other_node = redis_client().lock(redis_key("rl:usage:lock"), timeout=30)
    assert other_node.acquire(blocking=False)
    try:
        assert flush_once() is None
        with pytest.raises(CommandError, match="Another node"):
            call_command("flush_usage", "--wait", "0.1")
    finally:
        other_node.release()
    assert flush_once() == 1


@pytest.mark.django_db
def test_background_flusher_survives_a_failing_flush_and_counts_it(caplog):
    class BrokenStore:
        def claim_usage(self):
            raise StoreUnavailable("down")

    before = REGISTRY.get_sample_value("gateway_usage_flush_errors_total") or 0.0
    use_store(BrokenStore())  # type: ignore[arg-type]
    _Flusher(interval_seconds=60).flush()  # must not raise
    after = REGISTRY.get_sample_value("gateway_usage_flush_errors_total") or 0.0
    assert after - before == 1
    assert "usage flush failed" in caplog.text

"""Retries: on another target, within the route's timeout, with jittered backoff; never a
non-idempotent request that may have reached the upstream."""

from __future__ import annotations

import json

import pytest

from gateway_project.errors import UpstreamUnavailable
from routing.table import route_tables
from routing.upstream import UpstreamClient, UpstreamRequest
from tests.support.clock import FrozenClock

pytestmark = pytest.mark.django_db


def test_failed_get_is_retried_on_the_other_target(client, make_service, upstreams):
    a, b, _ = upstreams
    make_service("retry", [(a.url, 100), (b.url, 100)], route_fields={"retry": 1})
    a.stop()
    responses = [client.get("/retry/echo") for _ in range(4)]
    assert [r.status_code for r in responses] == [200] * 4
    assert b.count() == 4


def test_post_is_never_retried_once_it_may_have_reached_the_upstream(
    client, make_service, upstreams
):
    a, b, _ = upstreams
    make_service("post", [(a.url, 100), (b.url, 100)], route_fields={"retry": 3})
    # flaky/1: the upstream reads the request, then drops the connection without answering.
    response = client.post("/post/flaky/1", b'{"n": 1}', content_type="application/json")
    assert response.status_code == 502
    assert json.loads(response.content)["code"] == "upstream_unavailable"
    assert a.count("/flaky") + b.count("/flaky") == 1


def test_a_dropped_get_is_retried_until_it_succeeds(client, make_service, upstreams):
    a, b, _ = upstreams
    make_service("getr", [(a.url, 100), (b.url, 100)], route_fields={"retry": 3})
    # Each server drops its first flaky/1 request: a, then b, then a answers.
    response = client.get("/getr/flaky/1")
    assert response.status_code == 200
    assert (a.count("/flaky"), b.count("/flaky")) in [(2, 1), (1, 2)]


def test_post_is_retried_when_the_connection_was_refused(client, make_service, upstreams):
    a, b, _ = upstreams
    make_service("postr", [(a.url, 100), (b.url, 100)], route_fields={"retry": 1})
    a.stop()  # refused: the request surely never left, so sending it elsewhere is safe
    for _ in range(2):
        response = client.post("/postr/echo", b"{}", content_type="application/json")
        assert response.status_code == 200
    assert b.count() == 2


def test_a_timed_out_attempt_spends_the_whole_route_timeout_and_is_not_retried(
    client, make_service, upstreams
):
    a, b, _ = upstreams
    make_service(
        "deadline",
        [(a.url, 100), (b.url, 100)],
        route_fields={"retry": 5, "timeout_ms": 300},
    )
    # A real read timeout against a real slow peer (it answers after 2 s): nothing is timed
    # here. One attempt proves one overall deadline: with 300 ms per attempt, five retries fit.
    response = client.get("/deadline/slow/2000")
    assert response.status_code == 504
    assert json.loads(response.content)["code"] == "upstream_timeout"
    assert a.count() + b.count() == 1


class _RecordingClient(UpstreamClient):
    """An upstream client that notes the read timeout each attempt was given."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.read_timeouts: list[float] = []

    def _send_once(self, target, request, connect, read):
        self.read_timeouts.append(read)
        return super()._send_once(target, request, connect, read)


def test_each_attempt_gets_what_is_left_of_the_route_timeout_and_backoff_never_passes_it(
    make_service, upstreams, settings, monkeypatch
):
    settings.GATEWAY_RETRY_BACKOFF_MS = 100
    monkeypatch.setattr("routing.upstream.random.uniform", lambda low, high: 1.0)  # no jitter
    a, b, _ = upstreams
    make_service(
        "budget", [(a.url, 100), (b.url, 100)], route_fields={"retry": 5, "timeout_ms": 1000}
    )
    a.stop()
    b.stop()  # refused at once: only the injected clock moves, by the backoff sleeps
    clock = FrozenClock(1000.0)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    sender = _RecordingClient(sleep=sleep, monotonic=clock)
    route = route_tables.get().routes[0]
    with pytest.raises(UpstreamUnavailable):
        sender.send(route, UpstreamRequest("GET", "/echo", {}, None, True))
    # Backoffs 0.1, 0.2, 0.4 fit in the 1 s budget; the next (0.8) does not fit the 0.3 s left,
    # so the fourth attempt is the last although the route allows five retries.
    assert sleeps == pytest.approx([0.1, 0.2, 0.4])
    assert sender.read_timeouts == pytest.approx([1.0, 0.9, 0.7, 0.3])


def test_backoff_grows_with_jitter_between_attempts(make_service, upstreams, settings):
    settings.GATEWAY_RETRY_BACKOFF_MS = 100
    a, b, _ = upstreams
    make_service("backoff", [(a.url, 100), (b.url, 100)], route_fields={"retry": 3})
    a.stop()
    b.stop()
    clock = FrozenClock(1000.0)  # the route's 30 s budget is never what stops these retries
    sleeps: list[float] = []
    sender = UpstreamClient(sleep=sleeps.append, monotonic=clock)
    route = route_tables.get().routes[0]
    with pytest.raises(UpstreamUnavailable):
        sender.send(route, UpstreamRequest("GET", "/echo", {}, None, True))
    assert len(sleeps) == 3
    for attempt, pause in enumerate(sleeps):
        base = 0.1 * 2**attempt
        assert 0.5 * base <= pause <= 1.5 * base

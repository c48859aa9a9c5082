"""Circuit breakers: open after consecutive failures, fail fast, half-open probe, close again.

The upstream's own count of received requests proves that an open circuit never contacts it.
Every test here runs on the frozen routing clock: the circuit stays open until the test moves
the clock past the open time, however slow the machine is, and never longer.
"""

from __future__ import annotations

import json
import threading

import pytest

from gateway_project.errors import BadRequest
from gateway_project.redis import redis_configured
from routing.resilience_errors import CircuitOpen
from routing.table import route_tables
from routing.target_state import ResilienceState
from routing.upstream import UpstreamClient, UpstreamRequest
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db

OPEN_MS = 400
# Just past the open time: the next request is the half-open probe.
PAST_OPEN_SECONDS = OPEN_MS / 1000 + 0.001


@pytest.fixture
def breaker_route(make_service, upstreams, frozen_clock):
    """Service `cb` on upstream a, its route opening after 3 failures for 400 ms (frozen clock)."""
    a = upstreams[0]
    make_service(
        "cb",
        [(a.url, 100)],
        route_fields={"circuit_breaker_threshold": 3, "circuit_breaker_timeout_ms": OPEN_MS},
    )
    return a


def _problem_code(response) -> str:
    assert response["Content-Type"] == "application/problem+json", response.content
    return json.loads(response.content)["code"]


def test_breaker_opens_after_threshold_and_fails_fast_without_contacting_the_upstream(
    client, breaker_route
):
    upstream = breaker_route
    for _ in range(3):
        assert client.get("/cb/status/503").status_code == 503  # the upstream's own answers
    assert upstream.count() == 3
    for _ in range(5):
        response = client.get("/cb/echo")
        assert response.status_code == 503
        assert _problem_code(response) == "circuit_open"
        assert 1 <= int(response["Retry-After"]) <= 1
    assert upstream.count() == 3  # fail fast: none of the five reached the upstream


def test_half_open_probe_that_fails_opens_again_and_one_that_succeeds_closes(
    client, breaker_route, frozen_clock
):
    upstream = breaker_route
    for _ in range(3):
        client.get("/cb/status/502")
    assert _problem_code(client.get("/cb/echo")) == "circuit_open"
    frozen_clock.advance(OPEN_MS / 1000 - 0.001)
    assert _problem_code(client.get("/cb/echo")) == "circuit_open"  # still open just before
    assert upstream.count() == 3
    frozen_clock.advance(0.002)
    assert client.get("/cb/status/504").status_code == 504  # the probe reaches the upstream...
    assert upstream.count() == 4
    assert _problem_code(client.get("/cb/echo")) == "circuit_open"  # ...fails, and it reopens
    assert upstream.count() == 4
    frozen_clock.advance(PAST_OPEN_SECONDS)
    assert client.get("/cb/echo").status_code == 200  # a good probe closes the circuit
    for _ in range(3):
        assert client.get("/cb/echo").status_code == 200
    assert upstream.count() == 8


def test_half_open_lets_only_one_probe_through(client, breaker_route, frozen_clock):
    upstream = breaker_route
    for _ in range(3):
        client.get("/cb/status/503")
    frozen_clock.advance(PAST_OPEN_SECONDS)
    route_tables.get()  # compiled here: the thread cannot see this test's transaction
    # The probe is held by the upstream far longer than the three requests below need, even on
    # a loaded machine; a passing run waits for it only once.
    probe = threading.Thread(target=client.get, args=("/cb/slow/3000",))
    probe.start()
    wait_until(lambda: upstream.count("/slow"), message="the probe never reached the upstream")
    others = [client.get("/cb/echo") for _ in range(3)]
    probe.join(15)
    assert not probe.is_alive()
    assert [_problem_code(r) for r in others] == ["circuit_open"] * 3
    assert upstream.count("/slow") == 1 and upstream.count("/echo") == 0
    assert client.get("/cb/echo").status_code == 200  # the slow probe succeeded: closed


def test_refused_connections_open_the_breaker(client, breaker_route):
    upstream = breaker_route
    upstream.stop()
    assert [client.get("/cb/echo").status_code for _ in range(3)] == [502, 502, 502]
    upstream.start()
    assert _problem_code(client.get("/cb/echo")) == "circuit_open"
    assert upstream.count() == 0


def test_client_errors_and_500_do_not_count_as_failures(client, breaker_route):
    upstream = breaker_route
    for path in ["/cb/status/500", "/cb/status/404", "/cb/status/429"] * 2:
        client.get(path)
    assert client.get("/cb/echo").status_code == 200
    assert upstream.count() == 7


def test_a_success_resets_the_consecutive_count(client, breaker_route):
    upstream = breaker_route
    for _ in range(3):
        client.get("/cb/status/503")
        client.get("/cb/status/503")
        client.get("/cb/echo")
    assert client.get("/cb/echo").status_code == 200
    assert upstream.count() == 10


def test_breakers_are_per_route(client, make_service, upstreams, make_route):
    a = upstreams[0]
    make_service(
        "cb2",
        [(a.url, 100)],
        route_fields={"circuit_breaker_threshold": 2, "circuit_breaker_timeout_ms": 5000},
    )
    from routing.models import Route, Service

    Route.objects.create(
        path="/other/**",
        service=Service.objects.get(name="cb2"),
        strip_prefix=True,
        authentication="none",
    )
    route_tables.reset()
    client.get("/cb2/status/503")
    client.get("/cb2/status/503")
    assert _problem_code(client.get("/cb2/echo")) == "circuit_open"
    assert client.get("/other/echo").status_code == 200  # no breaker on this route


@pytest.mark.skipif(not redis_configured(), reason="sharing needs Redis")
def test_open_circuit_is_shared_with_every_process_through_redis(client, breaker_route):
    upstream = breaker_route
    for _ in range(3):
        client.get("/cb/status/503")
    route = route_tables.get().routes[0]
    other_worker = UpstreamClient(state=ResilienceState())  # its own memory, same Redis
    request = UpstreamRequest("GET", "/echo", {}, None, True)
    with pytest.raises(CircuitOpen):
        other_worker.send(route, request)
    assert upstream.count() == 3


@pytest.mark.skipif(not redis_configured(), reason="sharing needs Redis")
def test_failures_from_several_processes_add_up(client, breaker_route):
    upstream = breaker_route
    route = route_tables.get().routes[0]
    workers = [UpstreamClient(state=ResilienceState()) for _ in range(3)]
    for worker in workers:  # one failure each: three in a row across the fleet
        result = worker.send(route, UpstreamRequest("GET", "/status/503", {}, None, True))
        result.response.release_conn()
    response = client.get("/cb/echo")
    assert _problem_code(response) == "circuit_open"
    assert upstream.count() == 3


def test_a_request_that_cannot_be_forwarded_is_400_and_never_opens_the_breaker(
    client, breaker_route
):
    route = route_tables.get().routes[0]
    sender = UpstreamClient()
    request = UpstreamRequest("GET", "/echo", {"x-consumer-username": "a\nb"}, None, True)
    for _ in range(5):  # over the threshold of 3
        with pytest.raises(BadRequest):
            sender.send(route, request)
    assert breaker_route.count() == 0
    assert client.get("/cb/echo").status_code == 200  # the breaker stayed closed

"""Load balancing across a service's targets: weights, draining, least requests, DNS names."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from routing.dns import DnsExpander
from routing.table import CompiledService, CompiledTarget, route_tables
from routing.upstream import TargetPicker
from tests.support.clock import FrozenClock
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db


def _served_by(client, path: str, n: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    for _ in range(n):
        response = client.get(path)
        assert response.status_code == 200, response.content
        counts[response["X-Upstream"]] += 1
    return counts


def test_traffic_splits_by_weight(client, make_service, upstreams):
    a, b, c = upstreams
    make_service("split", [(a.url, 50), (b.url, 30), (c.url, 20)])
    counts = _served_by(client, "/split/echo", 100)
    # Smooth weighted round robin is exact over a full cycle of the weights.
    assert counts == {"upstream-a": 50, "upstream-b": 30, "upstream-c": 20}
    assert (a.count(), b.count(), c.count()) == (50, 30, 20)


def test_weight_zero_drains_a_target(client, make_service, upstreams):
    a, b, _ = upstreams
    make_service("drain", [(a.url, 100), (b.url, 0)])
    assert _served_by(client, "/drain/echo", 10) == {"upstream-a": 10}
    assert b.count() == 0


def test_least_requests_sends_to_the_target_with_fewer_in_flight(client, make_service, upstreams):
    a, b, _ = upstreams
    make_service("least", [(a.url, 100), (b.url, 100)], load_balancing="least_requests")
    route_tables.get()  # compile here: the thread below cannot see this test's transaction
    # The slow answer takes far longer than the six requests below need even on a loaded
    # machine, so it is still in flight while they are balanced; a passing run waits it once.
    slow = threading.Thread(target=client.get, args=("/least/slow/3000",))
    slow.start()
    wait_until(lambda: a.count() + b.count(), message="the slow request never left")
    busy, idle = (a, b) if a.count() else (b, a)
    # While one request waits on a slow answer, every new one goes to the idle target.
    later = _served_by(client, "/least/echo", 6)
    slow.join(15)
    assert not slow.is_alive()
    assert later == {idle.name: 6}
    assert busy.count("/slow") == 1 and busy.count("/echo") == 0


def test_round_robin_ignores_in_flight_requests(client, make_service, upstreams):
    a, b, _ = upstreams
    make_service("rr", [(a.url, 100), (b.url, 100)])
    assert _served_by(client, "/rr/echo", 6) == {"upstream-a": 3, "upstream-b": 3}


def test_dns_name_with_several_addresses_is_balanced_over_all_of_them(settings):
    settings.GATEWAY_DNS_REFRESH_MS = 60_000
    answers = {"api.internal": ["10.0.0.1", "10.0.0.2", "10.0.0.3"]}
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return answers[host]

    target = CompiledTarget.from_url("http://api.internal:8080", 100, service="dns")
    service = CompiledService("dns", (target,), 1.0, resolves=True)
    picker = TargetPicker(dns=DnsExpander(resolve))
    picked = Counter(picker.pick(service, set()).connect_host for _ in range(30))
    assert picked == {"10.0.0.1": 10, "10.0.0.2": 10, "10.0.0.3": 10}
    assert lookups == ["api.internal"]  # resolved once, cached until the refresh interval
    chosen = picker.pick(service, set())
    assert chosen.host_header == "api.internal:8080"  # the upstream still sees its own name


def test_dns_name_is_re_resolved_after_the_refresh_interval(settings):
    settings.GATEWAY_DNS_REFRESH_MS = 100
    answers = [["10.0.0.1", "10.0.0.2"], ["10.0.0.7", "10.0.0.8"]]

    def resolve(host: str, port: int) -> list[str]:
        return answers[0] if len(answers) == 1 else answers.pop(0)

    target = CompiledTarget.from_url("http://pods.internal", 100, service="dns")
    service = CompiledService("dns", (target,), 1.0, resolves=True)
    clock = FrozenClock(1000.0)
    picker = TargetPicker(dns=DnsExpander(resolve, monotonic=clock))
    first = {picker.pick(service, set()).connect_host for _ in range(2)}
    clock.advance(0.099)
    cached = {picker.pick(service, set()).connect_host for _ in range(2)}
    clock.advance(0.002)
    later = {picker.pick(service, set()).connect_host for _ in range(4)}
    assert first == cached == {"10.0.0.1", "10.0.0.2"}
    assert later == {"10.0.0.7", "10.0.0.8"}


def test_ip_literal_target_is_never_resolved():
    target = CompiledTarget.from_url("http://127.0.0.1:9", 100, service="ip")
    assert not target.resolve
    assert DnsExpander(lambda host, port: pytest.fail("resolved")).expand(target) == (target,)

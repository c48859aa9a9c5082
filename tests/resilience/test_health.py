"""Active health checks and passive ejection: unhealthy targets leave rotation and come back."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest
from django.core.management import call_command

from gateway_project.redis import redis_configured
from routing.clock import epoch_seconds
from routing.healthcheck import HealthChecker
from routing.table import CompiledService, CompiledTarget, route_tables
from routing.target_state import ResilienceState, target_key
from tests.support.clock import FrozenClock

pytestmark = pytest.mark.django_db


def _served_by(client, path: str, n: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    for _ in range(n):
        response = client.get(path)
        assert response.status_code == 200, response.content
        counts[response["X-Upstream"]] += 1
    return counts


@pytest.fixture
def fast_health(settings):
    """Health verdicts after one probe, so each round decides."""
    settings.GATEWAY_HEALTHCHECK_UNHEALTHY_AFTER = 1
    settings.GATEWAY_HEALTHCHECK_HEALTHY_AFTER = 1
    settings.GATEWAY_HEALTHCHECK_TIMEOUT_MS = 500
    return settings


def test_killed_target_is_ejected_and_recovered_after_the_cool_down(
    client, make_service, upstreams, settings, frozen_clock
):
    settings.GATEWAY_OUTLIER_CONSECUTIVE_FAILURES = 2
    settings.GATEWAY_OUTLIER_EJECTION_MS = 600
    a, b, _ = upstreams
    make_service("eject", [(a.url, 100), (b.url, 100)], route_fields={"retry": 1})
    a.stop()
    # Every request still succeeds: a refused connect is retried on the other target.
    assert _served_by(client, "/eject/echo", 6) == {"upstream-b": 6}
    a.start()  # back on the same port, but still ejected for the cool-down
    assert _served_by(client, "/eject/echo", 6) == {"upstream-b": 6}
    assert a.count() == 0
    frozen_clock.advance(0.599)
    assert _served_by(client, "/eject/echo", 2) == {"upstream-b": 2}  # the cool-down holds
    assert a.count() == 0
    frozen_clock.advance(0.002)
    assert _served_by(client, "/eject/echo", 6) == {"upstream-a": 3, "upstream-b": 3}


def test_ejection_needs_consecutive_failures(settings, frozen_clock):
    settings.GATEWAY_OUTLIER_CONSECUTIVE_FAILURES = 3
    a = CompiledTarget.from_url("http://127.0.0.1:9001", 100, service="streak")
    b = CompiledTarget.from_url("http://127.0.0.1:9002", 100, service="streak")
    service = CompiledService("streak", (a, b), 1.0)
    state = ResilienceState()
    for outcome in ["502", "502", None, "502", "502", None]:  # a success breaks each streak
        state.record_attempt(service, a, error=outcome)
    assert state.available(a, frozen_clock())
    for _ in range(3):
        state.record_attempt(service, a, error="upstream_unavailable")
    assert not state.available(a, frozen_clock())
    assert state.available(b, frozen_clock())


def test_a_service_with_one_target_is_never_ejected(client, make_service, upstreams, settings):
    settings.GATEWAY_OUTLIER_CONSECUTIVE_FAILURES = 1
    a, _, _ = upstreams
    make_service("single", [(a.url, 100)])
    a.stop()
    for _ in range(3):  # still 502 (the breaker's job is failing fast), not 503
        assert client.get("/single/echo").status_code == 502


def test_failing_health_check_takes_a_target_out_and_back(
    client, make_service, upstreams, fast_health
):
    a, b, _ = upstreams
    make_service("hc", [(a.url, 100), (b.url, 100)], health_check_path="/health")
    a.health_broken = True
    results = {r.target.url: r.healthy for r in HealthChecker().run_once(force=True)}
    assert results == {a.url: False, b.url: True}
    assert _served_by(client, "/hc/echo", 6) == {"upstream-b": 6}
    assert a.count("/echo") == 0  # no request was spent on the unhealthy target
    a.health_broken = False
    HealthChecker().run_once(force=True)
    assert _served_by(client, "/hc/echo", 6) == {"upstream-a": 3, "upstream-b": 3}


def test_target_turns_unhealthy_only_after_the_threshold(make_service, upstreams, settings):
    settings.GATEWAY_HEALTHCHECK_UNHEALTHY_AFTER = 2
    a, _, _ = upstreams
    make_service("thr", [(a.url, 100)], health_check_path="/health")
    checker = HealthChecker()
    a.health_broken = True
    assert [r.healthy for r in checker.run_once(force=True)] == [True]
    assert [r.healthy for r in checker.run_once(force=True)] == [False]
    assert a.count("/health") == 2


def test_no_healthy_target_is_503_problem(client, make_service, upstreams, fast_health):
    a, b, _ = upstreams
    make_service("none", [(a.url, 100), (b.url, 100)], health_check_path="/health")
    a.health_broken = b.health_broken = True
    HealthChecker().run_once(force=True)
    response = client.get("/none/echo")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert json.loads(response.content)["code"] == "no_healthy_target"
    assert a.count("/echo") + b.count("/echo") == 0


def test_checks_run_on_each_services_interval(make_service, upstreams, fast_health):
    a, b, _ = upstreams
    make_service("fast", [(a.url, 100)], health_check_path="/health", health_check_interval_ms=100)
    make_service(
        "slow", [(b.url, 100)], health_check_path="/health", health_check_interval_ms=60_000
    )
    clock = FrozenClock(1000.0)
    checker = HealthChecker(monotonic=clock)
    assert len(checker.run_once()) == 2  # both are due at the start
    for _ in range(5):
        clock.advance(0.04)
        assert checker.run_once() == []  # within fast's 100 ms interval: nothing is due
        clock.advance(0.07)
        assert [r.service for r in checker.run_once()] == ["fast"]
    assert a.count("/health") == 6  # the first round and one per 100 ms interval since
    assert b.count("/health") == 1  # its 60 s interval has not come round


@pytest.mark.skipif(not redis_configured(), reason="sharing needs Redis")
def test_health_verdicts_reach_every_process_through_redis(make_service, upstreams, fast_health):
    a, b, _ = upstreams
    service = make_service("shared", [(a.url, 100), (b.url, 100)], health_check_path="/health")
    a.health_broken = True
    HealthChecker().run_once(force=True)
    other_worker = ResilienceState()  # a fresh process: nothing local, only what Redis holds
    targets = {t.url: t for t in route_tables.get().routes[0].service.targets}
    now = epoch_seconds()
    assert not other_worker.available(targets[a.url], now)
    assert other_worker.available(targets[b.url], now)
    assert other_worker.describe(target_key(service.name, a.url)).health == "unhealthy"


def test_healthcheck_command_probes_once_and_reports(make_service, upstreams, fast_health):
    a, b, _ = upstreams
    make_service("cmd", [(a.url, 100), (b.url, 100)], health_check_path="/health")
    b.stop()
    out = io.StringIO()
    call_command("gateway", "healthcheck", "--once", stdout=out)
    lines = sorted(out.getvalue().splitlines())
    assert lines == sorted(
        [
            f"cmd {a.url}: healthy",
            f"cmd {b.url}: UNHEALTHY (health check: connection failed)",
        ]
    )

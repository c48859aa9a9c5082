"""Real gunicorn gateways: exactly N requests pass across processes, threads and workers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db.models import Sum

from quotas.models import Usage
from routing.models import Route, Service
from tests.quotas.conftest import needs_redis
from tests.support.gateway_server import GatewayServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _limited_route(upstream, limit: int) -> None:
    service = Service.objects.create(name="e2e-limits", url=upstream.url)
    Route.objects.create(
        path="/api/v1/e2e/**",
        service=service,
        authentication="none",
        rate_limit_requests=limit,
        rate_limit_period="hour",  # no refill worth a token during the test
    )


def _usage() -> tuple[int, int]:
    totals = Usage.objects.filter(route_name="ANY /api/v1/e2e/**").aggregate(
        requests=Sum("requests"), rejected=Sum("rejected")
    )
    return totals["requests"] or 0, totals["rejected"] or 0


def _hammer(urls: list[str], attempts: int) -> list[tuple[int, dict[str, str], bytes]]:
    targets = [urls[i % len(urls)] + "/api/v1/e2e/echo" for i in range(attempts)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(_get, targets))


@needs_redis
def test_two_gateway_processes_sharing_redis_let_exactly_n_through(upstream):
    limit = 25
    _limited_route(upstream, limit)
    with (
        GatewayServer(GATEWAY_USAGE_TRACKING="true") as first,
        GatewayServer(GATEWAY_USAGE_TRACKING="true") as second,
    ):
        results = _hammer([first.url, second.url], 120)
        statuses = [status for status, _, _ in results]
        assert statuses.count(200) == limit, first.log() + second.log()
        assert statuses.count(429) == 120 - limit
    refused = next(result for result in results if result[0] == 429)
    _, headers, body = refused
    assert headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["code"] == "rate_limit_exceeded"
    assert int(headers["Retry-After"]) > 0
    assert headers["RateLimit-Remaining"] == "0"
    assert upstream.count("/api/v1/e2e/") == limit
    # Stopping the servers flushed their usage counts into the database.
    assert _usage() == (limit, 120 - limit)


def test_one_gateway_without_redis_is_exact_across_its_threads(upstream):
    limit = 20
    _limited_route(upstream, limit)
    server = GatewayServer(GATEWAY_WORKERS="1", GATEWAY_THREADS="8", GATEWAY_USAGE_TRACKING="true")
    server.env.pop("REDIS_URL", None)  # the embedded default: counters in the one worker
    with server:
        statuses = [status for status, _, _ in _hammer([server.url], 80)]
        assert statuses.count(200) == limit, server.log()
        assert statuses.count(429) == 80 - limit
    # The counts lived in the worker; it flushed them into the database when it stopped.
    assert _usage() == (limit, 80 - limit)

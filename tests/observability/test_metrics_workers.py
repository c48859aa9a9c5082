"""Metrics under real gunicorn with two workers: one scrape sums what every worker counted."""

from __future__ import annotations

import glob
import os
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from routing.models import Route, Service
from tests.support.gateway_server import GatewayServer
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROUTE = "ANY /api/v1/metered/**"


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _requests(scrape: dict, status_class: str) -> float:
    key = (
        "gateway_requests_total",
        tuple(
            sorted(
                {
                    "route": ROUTE,
                    "service": "metered",
                    "method": "GET",
                    "status_class": status_class,
                }.items()
            )
        ),
    )
    return scrape.get(key, 0.0)


def _per_worker_counts(metrics_dir: str) -> list[float]:
    """gateway_requests_total of our route in each worker's own file."""
    counts = []
    for path in glob.glob(os.path.join(metrics_dir, "counter_*.db")):
        total = 0.0
        for key, value, *_ in MmapedDict.read_all_values_from_file(path):
            if '"gateway_requests_total"' in key and ROUTE in key:
                total += value
        counts.append(total)
    return counts


def test_two_workers_count_into_one_scrape_with_bounded_labels(upstream, tmp_path):
    service = Service.objects.create(name="metered", url=upstream.url)
    Route.objects.create(path="/api/v1/metered/**", service=service, authentication="none")
    metrics_dir = str(tmp_path / "prom")
    with GatewayServer(GATEWAY_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=metrics_dir) as gateway:
        warm_up: list[int] = []

        def route_served() -> bool:
            warm_up.append(_status(f"{gateway.url}/api/v1/metered/echo"))
            return warm_up[-1] == 200

        wait_until(route_served, interval=0.1, message=gateway.log)

        # The warm-up's own counts reach the scrape shortly after it too: wait for them, or
        # a late one would be taken for one of the requests below.
        def warm_up_counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            scrape = _scrape(gateway.url)
            ok = _requests(scrape, "2xx") >= warm_up.count(200)
            return scrape if ok and _requests(scrape, "4xx") >= warm_up.count(404) else None

        before = wait_until(warm_up_counted, interval=0.1, message="the warm-up never counted")
        ok_before, missing_before = _requests(before, "2xx"), _requests(before, "4xx")
        # Concurrent slow requests keep one worker busy so the other has to take some.
        urls = [f"{gateway.url}/api/v1/metered/slow/150/{n}" for n in range(24)]
        urls += [f"{gateway.url}/api/v1/metered/status/404?n={n}" for n in range(6)]
        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = list(pool.map(_status, urls))
        assert statuses.count(200) == 24 and statuses.count(404) == 6

        # Each worker applies its counts shortly after a request (gateway_project/metrics.py):
        # poll the scrape until both totals are in (bounded, generous for a loaded machine),
        # then check them exactly, so an overcount still fails.
        def totals_in() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            scrape = _scrape(gateway.url)
            done = (
                _requests(scrape, "2xx") >= ok_before + 24
                and _requests(scrape, "4xx") >= missing_before + 6
            )
            return scrape if done else None

        after = wait_until(
            totals_in, interval=0.1, message="the workers' request totals never reached the scrape"
        )
        assert _requests(after, "2xx") == ok_before + 24
        assert _requests(after, "4xx") == missing_before + 6
        workers = [count for count in _per_worker_counts(metrics_dir) if count]
        assert len(workers) == 2, (workers, gateway.log())
        assert sum(workers) == _requests(after, "2xx") + _requests(after, "4xx")
        label_values = {value for _, labels in after for _, value in labels}
        assert not any("/slow/" in value or "n=" in value for value in label_values)
        assert after[("gateway_requests_in_flight", ())] >= 0
        versions = [v for (name, _), v in after.items() if name == "gateway_config_version"]
        assert versions and versions[0] >= 1

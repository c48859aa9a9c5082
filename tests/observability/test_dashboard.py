"""The console's home page shows traffic charts fed by the gateway's own aggregates."""

from __future__ import annotations

import re

from gateway_project import dashboard, traffic
from routing.pipeline import Authenticate
from tests.support.observability import authenticate_alice


def _row(html: str, route: str) -> list[str]:
    """The numeric cells of the first (last hour) table row of `route`."""
    match = re.search(
        r'<tr data-route="' + re.escape(route) + r'">(.*?)</tr>', html, flags=re.DOTALL
    )
    assert match, f"no dashboard row for {route}"
    return re.findall(r'<td class="gw-num">([^<]*)</td>', match.group(1))


def test_dashboard_renders_requests_errors_latency_and_consumers_after_traffic(
    admin_client, client, make_route, upstream, monkeypatch
):
    monkeypatch.setattr(Authenticate, "run", authenticate_alice)
    make_route("/api/v1/dash/**", upstream.url)
    route = "ANY /api/v1/dash/**"
    for n in range(6):
        assert client.get(f"/api/v1/dash/echo/{n}").status_code == 200
    for _ in range(2):
        assert client.get("/api/v1/dash/status/503").status_code == 503
    assert client.get("/api/v1/dash/slow/120").status_code == 200

    response = admin_client.get("/admin/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="traffic-dashboard"' in html
    assert "Last hour" in html and "Last 24 hours" in html
    requests, error_rate, p50, p95, rejected = _row(html, route)
    assert requests == "9"
    assert error_rate == "22.2%"  # 2 of 9 answers were 5xx
    assert 0 < float(p50) <= float(p95)
    assert float(p95) >= 100  # the slow request lands in the top 5%
    assert rejected == "0"
    assert ">alice<" in html  # the top consumer
    assert "<svg" in html and "<rect" in html  # the charts, drawn inline (no CDN)
    assert "http://" not in html.split('id="traffic-dashboard"')[1].split("</svg>")[0]


def test_dashboard_counts_limit_rejections(admin_client, client, make_route, upstream):
    make_route("/api/v1/dash-limited/**", upstream.url, rate_limit_requests=1)
    statuses = [client.get("/api/v1/dash-limited/echo").status_code for _ in range(4)]
    assert statuses == [200, 429, 429, 429]
    html = admin_client.get("/admin/").content.decode()
    requests, _, _, _, rejected = _row(html, "ANY /api/v1/dash-limited/**")
    assert (requests, rejected) == ("4", "3")


def test_percentiles_are_interpolated_within_latency_buckets():
    buckets = [0] * (len(traffic.LATENCY_BOUNDS_MS) + 1)
    buckets[1] = 50  # 5-10 ms
    buckets[5] = 50  # 75-100 ms
    assert dashboard.percentile_ms(buckets, 0.5) == 10.0
    assert dashboard.percentile_ms(buckets, 0.95) == 97.5
    assert dashboard.percentile_ms([0] * len(buckets), 0.5) is None


def test_the_day_window_keeps_what_the_hour_window_no_longer_shows(db):
    old = 1_800_000_000 - 3 * 3600  # three hours before "now"
    traffic.buffer.record(
        route="ANY /api/v1/old/**", status=200, rejected=False, total_ms=12, consumer=None, now=old
    )
    hour, day = dashboard.traffic_windows(now=1_800_000_000)
    assert "ANY /api/v1/old/**" not in [r.route for r in hour.routes]
    (old_row,) = [r for r in day.routes if r.route == "ANY /api/v1/old/**"]
    assert old_row.requests == 1


def test_anonymous_visitors_get_the_login_page_not_the_numbers(client, db):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]

"""/metrics: Prometheus text, bounded labels, and access control by token or address."""

from __future__ import annotations

from ipaddress import ip_network

from prometheus_client.parser import text_string_to_metric_families

from gateway_project.area_settings import MetricsSettings
from tests.support.observability import sample


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def test_requests_are_counted_per_route_never_per_raw_path(client, make_route, upstream):
    make_route("/api/v1/items/**", upstream.url, service="items")
    route = "ANY /api/v1/items/**"
    labels = {"route": route, "service": "items", "method": "GET", "status_class": "2xx"}
    before = sample("gateway_requests_total", **labels)
    for n in range(5):
        assert client.get(f"/api/v1/items/echo/{n}?q={n}").status_code == 200
    client.post("/api/v1/items/status/404", data=b"{}", content_type="application/json")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    requests = _samples(text, "gateway_requests_total")
    ours = [(lab, value) for lab, value in requests if lab.get("route") == route]
    assert {"route": route, "service": "items", "method": "GET", "status_class": "2xx"} in [
        lab for lab, _ in ours
    ]
    assert sample("gateway_requests_total", **labels) == before + 5
    post = {"route": route, "service": "items", "method": "POST", "status_class": "4xx"}
    assert sample("gateway_requests_total", **post) >= 1
    assert "/echo/" not in text and "q=" not in text  # no raw path ever becomes a label
    histogram = sample("gateway_request_duration_seconds_count", route=route, service="items")
    upstream_hist = sample("gateway_upstream_duration_seconds_count", route=route, service="items")
    assert histogram >= 6 and upstream_hist >= 6
    assert "gateway_requests_in_flight" in text
    assert "gateway_circuit_breaker_state" in text
    assert "gateway_config_version" in text


def test_unknown_methods_and_unmatched_paths_share_fixed_labels(client, db):
    before = sample(
        "gateway_requests_total",
        route="(unmatched)",
        service="(none)",
        method="OTHER",
        status_class="4xx",
    )
    for n in range(3):
        client.generic(f"BREW{n}", f"/no-such-route/{n}")
    after = sample(
        "gateway_requests_total",
        route="(unmatched)",
        service="(none)",
        method="OTHER",
        status_class="4xx",
    )
    assert after == before + 3


def test_metrics_need_the_token_when_one_is_set(client, db, settings):
    settings.GATEWAY_METRICS = MetricsSettings(token="scrape-token-123")
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["Content-Type"] == "application/problem+json"
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-123")
    assert ok.status_code == 200 and b"gateway_requests_total" in ok.content


def test_metrics_are_refused_outside_the_allowed_networks(client, db, settings):
    settings.GATEWAY_METRICS = MetricsSettings(allowed_networks=(ip_network("10.0.0.0/8"),))
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


def test_with_both_rules_set_both_must_pass(client, db, settings):
    settings.GATEWAY_METRICS = MetricsSettings(
        token="t0ken-abc", allowed_networks=(ip_network("10.0.0.0/8"),)
    )
    auth = "Bearer t0ken-abc"
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 401
    assert (
        client.get("/metrics", REMOTE_ADDR="192.0.2.7", HTTP_AUTHORIZATION=auth).status_code == 403
    )
    assert (
        client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION=auth).status_code == 200
    )


def test_breaker_state_and_config_version_are_published(client, make_route, upstream):
    from gateway_project import metrics

    metrics.set_breaker_state(service="breaker-svc", state="open")
    make_route("/api/v1/version/**", upstream.url)
    metrics._config_noted[1] = 0.0  # look at the version on this request, not a second later
    assert client.get("/api/v1/version/echo").status_code == 200
    text = client.get("/metrics").content.decode()
    assert sample("gateway_circuit_breaker_state", service="breaker-svc") == 2
    from routing.table import route_tables

    assert sample("gateway_config_version") == route_tables.get().version
    assert 'gateway_circuit_breaker_state{service="breaker-svc"} 2.0' in text
    metrics.set_breaker_state(service="breaker-svc", state="closed")
    assert sample("gateway_circuit_breaker_state", service="breaker-svc") == 0

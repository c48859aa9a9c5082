"""The console's live target state, the config format's load_balancing, and the hot path."""

from __future__ import annotations

import pytest

from routing.configfile.service import config_export, config_import
from routing.configfile.validate import ConfigInvalid
from routing.healthcheck import HealthChecker
from routing.models import Service

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", password="long-test-password-1")
    client.force_login(user)
    return client


def test_service_page_shows_live_health_breaker_state_and_last_error(
    staff_client, client, make_service, upstreams, settings
):
    settings.GATEWAY_HEALTHCHECK_UNHEALTHY_AFTER = 1
    a, b, _ = upstreams
    service = make_service(
        "console",
        [(a.url, 100), (b.url, 100)],
        health_check_path="/health",
        route_fields={"circuit_breaker_threshold": 1, "circuit_breaker_timeout_ms": 60_000},
    )
    b.stop()
    HealthChecker().run_once(force=True)
    assert client.get("/console/status/503").status_code == 503  # opens the breaker
    page = staff_client.get(f"/admin/routing/service/{service.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "healthy" in html and "unhealthy" in html
    assert "health check: connection failed" in html
    assert "/console/**: open" in html
    assert "Least requests in flight" in html or "least requests in flight" in html


def test_load_balancing_round_trips_through_the_config_file():
    text = """
services:
  - name: lr
    load_balancing: least_requests
    targets:
      - {url: "http://127.0.0.1:9001"}
      - {url: "http://127.0.0.1:9002"}
routes:
  - {path: /lr/**, service: lr, authentication: none}
"""
    config_import(text=text)
    assert Service.objects.get(name="lr").load_balancing == "least_requests"
    exported = config_export()
    assert "load_balancing: least_requests" in exported
    assert config_import(text=exported).changes == []


def test_unknown_load_balancing_is_a_located_error():
    text = """
services:
  - name: lr
    url: http://127.0.0.1:9001
    load_balancing: random
"""
    with pytest.raises(ConfigInvalid) as invalid:
        config_import(text=text)
    assert [e.location for e in invalid.value.errors] == ["services[0].load_balancing"]
    assert "round_robin, least_requests" in invalid.value.errors[0].message


def test_proxied_request_with_breaker_and_health_checks_makes_no_database_query(
    client, make_service, upstreams, django_assert_num_queries
):
    a, b, _ = upstreams
    make_service(
        "hot",
        [(a.url, 100), (b.url, 100)],
        health_check_path="/health",
        load_balancing="least_requests",
        route_fields={"circuit_breaker_threshold": 5, "retry": 1},
    )
    HealthChecker().run_once(force=True)
    assert client.get("/hot/echo").status_code == 200  # compiles the table
    with django_assert_num_queries(0):
        for _ in range(5):
            assert client.get("/hot/echo").status_code == 200

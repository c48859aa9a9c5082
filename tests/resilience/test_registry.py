"""Self-registration: register, heartbeat, lapse, deregister; the registration token guards it."""

from __future__ import annotations

import json

import pytest

from routing.configfile.service import config_export, config_import
from routing.models import Route, Service, Target
from routing.table import route_tables

pytestmark = pytest.mark.django_db

TOKEN = "registration-secret-for-tests"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


@pytest.fixture
def registry(settings):
    """The registry open with a known token, and a routed service without static targets."""
    settings.GATEWAY_REGISTRATION_TOKEN = TOKEN
    service = Service.objects.create(name="reg")
    Route.objects.create(path="/reg/**", service=service, strip_prefix=True, authentication="none")
    return service


def _post(client, what: str, body: dict, **extra):
    return client.post(
        f"/api/gateway/registry/{what}", json.dumps(body), content_type="application/json", **extra
    )


def _register(client, url: str, **fields):
    response = _post(client, "register", {"service": "reg", "url": url, **fields}, **AUTH)
    route_tables.reset()  # what the config poll does within GATEWAY_CONFIG_POLL
    return response


def _code(response) -> str:
    assert response["Content-Type"] == "application/problem+json"
    return json.loads(response.content)["code"]


def test_registered_target_gets_traffic(client, registry, upstreams):
    a = upstreams[0]
    assert _code(client.get("/reg/echo")) == "service_unavailable"  # nothing registered yet
    response = _register(client, a.url, weight=50, ttl="30s")
    assert response.status_code == 201
    body = json.loads(response.content)
    assert body["service"] == "reg" and body["url"] == a.url
    assert body["weight"] == 50 and body["ttl"] == "30s" and body["expires_at"].endswith("Z")
    assert client.get("/reg/echo")["X-Upstream"] == "upstream-a"
    again = _register(client, a.url, weight=50, ttl="30s")
    assert again.status_code == 200  # re-registering is idempotent
    assert Target.objects.filter(service=registry, registered=True).count() == 1


def test_registration_creates_an_unknown_service(client, registry, upstreams):
    response = _post(
        client, "register", {"service": "newcomer", "url": upstreams[0].url, "ttl": 10}, **AUTH
    )
    assert response.status_code == 201
    assert json.loads(response.content)["ttl"] == "10s"
    assert Service.objects.get(name="newcomer").targets.get().registered


def test_target_whose_heartbeat_lapses_leaves_rotation_and_heartbeats_keep_it(
    client, registry, upstreams, frozen_clock
):
    a, b, _ = upstreams
    _register(client, a.url, ttl="1s")
    _register(client, b.url, ttl="1s")
    frozen_clock.advance(0.6)
    assert _post(client, "heartbeat", {"service": "reg", "url": a.url}, **AUTH).status_code == 200
    frozen_clock.advance(0.39)
    served = {client.get("/reg/echo")["X-Upstream"] for _ in range(4)}
    assert served == {"upstream-a", "upstream-b"}  # b's lease has 10 ms left
    frozen_clock.advance(0.02)  # b's lease (1s) is over; a's was extended by its heartbeat
    served = {client.get("/reg/echo")["X-Upstream"] for _ in range(4)}
    assert served == {"upstream-a"}
    frozen_clock.advance(0.6)  # 1.61 s: a's lease (heartbeat at 0.6 + 1 s) is over too
    response = client.get("/reg/echo")
    assert response.status_code == 503 and _code(response) == "no_healthy_target"
    assert _post(client, "heartbeat", {"service": "reg", "url": b.url}, **AUTH).status_code == 200
    assert client.get("/reg/echo")["X-Upstream"] == "upstream-b"  # a heartbeat brings it back


def test_heartbeat_reads_the_database_but_writes_it_only_when_half_the_lease_is_gone(
    client, registry, upstreams, django_assert_num_queries
):
    a = upstreams[0]
    _register(client, a.url, ttl="60s")
    stored = Target.objects.get(url=a.url).lease_expires_at
    assert stored is not None
    with django_assert_num_queries(1):
        response = _post(client, "heartbeat", {"service": "reg", "url": a.url}, **AUTH)
    assert response.status_code == 200
    assert Target.objects.get(url=a.url).lease_expires_at == stored
    Target.objects.filter(url=a.url).update(lease_expires_at=stored.replace(year=2000))
    with django_assert_num_queries(2):  # the stored lease is stale: one write refreshes it
        _post(client, "heartbeat", {"service": "reg", "url": a.url}, **AUTH)


def test_deregistered_target_leaves_rotation(client, registry, upstreams):
    a, b, _ = upstreams
    _register(client, a.url)
    _register(client, b.url)
    response = client.delete(
        "/api/gateway/registry/register",
        json.dumps({"service": "reg", "url": a.url}),
        content_type="application/json",
        **AUTH,
    )
    assert response.status_code == 204
    route_tables.reset()
    assert {client.get("/reg/echo")["X-Upstream"] for _ in range(4)} == {"upstream-b"}
    again = client.delete(f"/api/gateway/registry/register?service=reg&url={a.url}", **AUTH)
    assert again.status_code == 404 and _code(again) == "target_not_registered"


def test_heartbeat_for_an_unknown_target_is_404(client, registry):
    response = _post(client, "heartbeat", {"service": "reg", "url": "http://10.9.9.9"}, **AUTH)
    assert response.status_code == 404
    assert _code(response) == "target_not_registered"


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"]
)
def test_registry_rejects_a_missing_or_wrong_token_with_401(client, registry, upstreams, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = _post(client, "register", {"service": "reg", "url": upstreams[0].url}, **extra)
    assert response.status_code == 401
    assert _code(response) == "registration_unauthorized"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Target.objects.exists()


def test_registry_is_closed_without_a_configured_token(client, registry, settings, upstreams):
    settings.GATEWAY_REGISTRATION_TOKEN = None
    response = _post(client, "register", {"service": "reg", "url": upstreams[0].url}, **AUTH)
    assert response.status_code == 403
    assert _code(response) == "registration_disabled"


def test_invalid_registration_lists_every_field_error(client, registry):
    body = {"service": "Bad Name", "url": "ftp://x", "weight": -1, "ttl": "forever"}
    response = _post(client, "register", body, **AUTH)
    assert response.status_code == 400
    fields = {error["field"] for error in json.loads(response.content)["errors"]}
    assert fields == {"service", "url", "weight", "ttl"}


def test_static_service_cannot_be_registered_over(client, registry, upstreams):
    Service.objects.create(name="fixed", url=upstreams[0].url)
    response = _post(client, "register", {"service": "fixed", "url": upstreams[1].url}, **AUTH)
    assert response.status_code == 409
    assert _code(response) == "registration_conflict"


def test_registered_targets_stay_out_of_export_and_survive_import(client, registry, upstreams):
    _register(client, upstreams[0].url)
    exported = config_export()
    assert upstreams[0].url not in exported
    assert "targets: []" in exported
    result = config_import(text=exported, dry_run=False, prune=True)
    assert result.changes == []
    assert Target.objects.filter(url=upstreams[0].url, registered=True).exists()

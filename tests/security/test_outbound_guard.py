"""The one outbound address guard: every spelling refused at validation, every resolved address
checked at connect time (proxy, docs fetch, health checks, JWKS), no second resolution; the
gateway's own address refused as an upstream."""

from __future__ import annotations

import ipaddress
import socket

import pytest
import urllib3
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from accounts.jwks import JwksKeySet
from gateway_project import outbound_guard
from gateway_project.outbound_guard import guarded_pool_classes, parse_ip
from routing.configfile.service import config_import
from routing.configfile.validate import ConfigInvalid
from routing.healthcheck import HealthChecker
from routing.models import Route, Service
from routing.table import route_tables
from routing.upstream_docs import SpecUnavailable, fetch_spec
from routing.upstream_urls import upstream_url_error

METADATA = ipaddress.ip_address("169.254.169.254")
# Every way the C resolver (and so a connect) reads 169.254.169.254, and IPv6 forms reaching it.
METADATA_SPELLINGS = [
    "2852039166",
    "0xa9fea9fe",
    "0XA9FEA9FE",
    "0251.0376.0251.0376",
    "169.254.43518",
    "169.16689662",
    "0xa9.0xfe.0xa9.0xfe",
    "169.254.169.254.",
    "[::169.254.169.254]",
    "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "[64:ff9b::169.254.169.254]",
    "[2002:a9fe:a9fe::1]",
]
LOOPBACK_SPELLINGS = [
    "127.1",
    "0x7f.1",
    "0177.0.0.1",
    "2130706433",
    "127.0.0.1",
    "[::ffff:127.0.0.1]",
    "[::127.0.0.1]",
    "[::1]",
    "localhost",
    "api.localhost",
]


@pytest.fixture
def loopback_blocked(settings):
    """Loopback stands in for a metadata address: tests can reach only loopback."""
    settings.GATEWAY_UPSTREAM_BLOCKED_NETWORKS = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )


@pytest.mark.parametrize("host", METADATA_SPELLINGS)
def test_every_spelling_is_parsed_to_the_address_it_reaches(host):
    ip = parse_ip(host)
    assert ip is not None
    assert METADATA in outbound_guard.reached_addresses(ip)


@pytest.mark.parametrize("name", ["1.2.3.4.5", "0x100.1", "example.com", "09.1.1.1", "1.2.3.4x"])
def test_names_and_impossible_numbers_are_not_addresses(name):
    assert parse_ip(name) is None  # left to the resolver, whose answer is checked at connect


@hypothesis_settings(max_examples=2000, deadline=None, derandomize=True)
@given(st.text(alphabet="0123456789abcdefxX.", max_size=24))
def test_ipv4_spellings_parse_exactly_as_the_c_library_does(spelling):
    """What a connect would reach (inet_aton) is what the guard checks, and nothing else."""
    try:
        expected = socket.inet_ntoa(socket.inet_aton(spelling))
    except OSError:
        expected = None
    parsed = outbound_guard.parse_ipv4_spelling(spelling)
    assert (str(parsed) if parsed else None) == expected


@pytest.mark.parametrize("host", METADATA_SPELLINGS)
def test_every_metadata_spelling_is_refused_at_validation(host):
    error = upstream_url_error(f"http://{host}/latest")
    assert error is not None and "169.254.169.254" in error


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_every_loopback_spelling_is_refused_when_loopback_is_blocked(host, loopback_blocked):
    assert upstream_url_error(f"http://{host}:9001") is not None


@pytest.mark.parametrize("host", ["127.1", "0x7f.1", "0177.0.0.1", "2130706433"])
def test_odd_spellings_of_allowed_addresses_are_refused_with_the_canonical_form(host):
    assert "write it as 127.0.0.1" in (upstream_url_error(f"http://{host}:9001") or "")


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["2852039166", "[::169.254.169.254]", "0251.0376.0251.0376"])
def test_config_file_refuses_a_spelled_metadata_address_with_its_location(host):
    text = f"services:\n  - name: meta\n    url: http://{host}\n"
    with pytest.raises(ConfigInvalid) as caught:
        config_import(text=text)
    assert [e.location for e in caught.value.errors] == ["services[0].url"]
    assert not Service.objects.filter(name="meta").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["0xa9fea9fe", "169.254.43518", "[::ffff:a9fe:a9fe]"])
def test_management_api_refuses_a_spelled_metadata_address(admin_user, host):
    client = APIClient()
    client.force_login(admin_user)
    response = client.post(
        "/api/gateway/services/", {"name": "meta", "url": f"http://{host}"}, format="json"
    )
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["url"]


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["2852039166", "[::169.254.169.254]", "0x7f.1"])
def test_registry_refuses_a_spelled_address(settings, host):
    settings.GATEWAY_REGISTRATION_TOKEN = "registration-token-for-tests-0123456789"
    response = APIClient().post(
        "/api/gateway/registry/register",
        {"service": "reg", "url": f"http://{host}:9001"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {settings.GATEWAY_REGISTRATION_TOKEN}",
    )
    assert response.status_code == 400, response.content
    assert [e["field"] for e in response.json()["errors"]] == ["url"]
    assert not Service.objects.filter(name="reg").exists()


# --- connect time ---------------------------------------------------------------------------


def test_a_name_with_one_blocked_address_among_good_ones_is_refused(monkeypatch):
    def resolve(host, port, *args, **kwargs):
        good = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))
        bad = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))
        return [good, bad]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(ValueError, match=r"169\.254\.169\.254"):
        outbound_guard.checked_addresses("two-faced.example", 80)


def test_the_checked_address_is_the_one_connected_to(monkeypatch, upstream):
    """DNS rebinding: the name is resolved once per connection; a second answer is never used."""
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", "169.254.169.254"])  # the second answer would be the attack
    calls = []

    def resolve(host, port, *args, **kwargs):
        if host != "rebind.example":
            return real(host, port, *args, **kwargs)
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    pool = guarded_pool_classes()["http"]("rebind.example", upstream.port, retries=False)
    response = pool.urlopen("GET", "/echo", headers={"Host": "rebind.example"})
    assert response.status == 200
    assert calls == ["rebind.example"]  # one resolution, and the request went to its answer
    assert upstream.count("/echo") == 1


def test_a_name_resolving_to_a_blocked_address_is_never_connected(loopback_blocked, upstream):
    pool = guarded_pool_classes()["http"]("localhost", upstream.port, retries=False)
    with pytest.raises(urllib3.exceptions.NewConnectionError, match="blocked address"):
        pool.urlopen("GET", "/echo")
    assert upstream.count() == 0


@pytest.mark.django_db
def test_docs_fetch_is_refused_for_a_blocked_address(loopback_blocked, upstream):
    service = Service.objects.create(
        name="docs-blocked",
        url=upstream.url.replace("127.0.0.1", "localhost"),
        openapi="/openapi.json",
    )
    with pytest.raises(SpecUnavailable, match="blocked"):
        fetch_spec(service)
    response = APIClient().get("/api/docs/services/docs-blocked/openapi.json")
    assert response.status_code == 503
    assert "openapi" not in response.content.decode().replace("/openapi.json", "")
    assert "127.0.0.1" not in response.json()["detail"]
    assert upstream.count() == 0


@pytest.mark.django_db
def test_docs_fetch_is_refused_for_a_spelled_blocked_address(upstream):
    # Written before validation existed, or straight into the database: still never fetched.
    service = Service.objects.create(
        name="docs-spelled", url="http://2852039166:9", openapi="/openapi.json"
    )
    with pytest.raises(SpecUnavailable, match="blocked"):
        fetch_spec(service)


@pytest.mark.django_db
def test_health_checks_go_through_the_guard(loopback_blocked, upstream):
    service = Service.objects.create(
        name="hc-blocked",
        url=upstream.url.replace("127.0.0.1", "localhost"),
        health_check_path="/health",
    )
    Route.objects.create(path="/hc-blocked/**", service=service, authentication="none")
    route_tables.reset()
    checker = HealthChecker()
    try:
        results = checker.run_once(force=True)
    finally:
        checker.close()
    assert [(r.service, r.ok) for r in results] == [("hc-blocked", False)]
    assert upstream.count() == 0


def test_jwks_fetch_goes_through_the_guard(loopback_blocked, upstream):
    keys = JwksKeySet(
        url=f"http://localhost:{upstream.port}/jwks.json",
        algorithms=("RS256",),
        timeout_seconds=2,
        max_age_seconds=60,
        min_refetch_seconds=0,
    )
    assert keys.key("any") is None
    assert keys.fetch_count == 1
    assert upstream.count() == 0


# --- the gateway's own address ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8123", "http://localhost:8123/x", "http://[::1]:8123"]
)
def test_the_gateways_own_listen_address_is_refused(settings, url):
    settings.GATEWAY_BIND = "127.0.0.1:8123"
    error = upstream_url_error(url) or ""
    assert "GATEWAY_BIND" in error and "own listen address" in error


def test_a_wildcard_bind_refuses_every_local_spelling_of_its_port(settings):
    settings.GATEWAY_BIND = "0.0.0.0:8123"
    assert "GATEWAY_BIND" in (upstream_url_error("http://127.0.0.1:8123") or "")
    assert "GATEWAY_BIND" in (upstream_url_error("http://0.0.0.0:8123") or "")
    assert upstream_url_error("http://127.0.0.1:8124") is None


def test_the_gateways_public_url_is_refused(settings):
    settings.GATEWAY_PUBLIC_URL = "https://api.example.com"
    assert "GATEWAY_PUBLIC_URL" in (upstream_url_error("https://api.example.com/v1") or "")
    assert "GATEWAY_PUBLIC_URL" in (upstream_url_error("https://API.example.com:443") or "")
    assert upstream_url_error("http://api.example.com") is None  # another port: another server


@pytest.mark.django_db
def test_config_file_refuses_the_gateways_own_address_naming_field_and_setting(settings):
    settings.GATEWAY_BIND = "127.0.0.1:8123"
    text = "services:\n  - name: self\n    url: http://localhost:8123\n"
    with pytest.raises(ConfigInvalid) as caught:
        config_import(text=text)
    [error] = caught.value.errors
    assert error.location == "services[0].url"
    assert "GATEWAY_BIND" in error.message

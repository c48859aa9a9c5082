"""Upstream safety: metadata and link-local addresses refused at validation and at connect."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
from django.contrib.auth.hashers import check_password
from rest_framework.test import APIClient

from gateway_project.outbound_guard import address_blocked
from routing.configfile.service import config_import
from routing.configfile.validate import ConfigInvalid
from routing.models import Route, Service
from routing.upstream_urls import upstream_url_error
from tests.security.wire import get, problem_of, raw_exchange, status_of
from tests.support.gateway_server import GatewayServer

REFUSED_URLS = [
    "http://169.254.169.254/latest/meta-data",
    "http://169.254.1.7:8080",
    "http://[fe80::1]:80",
    "http://[fd00:ec2::254]",
    "http://100.100.100.200",
    "http://[::ffff:169.254.169.254]",
    "http://metadata.google.internal",
    "http://metadata",
    "https://METADATA.google.internal.",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_metadata_and_link_local_upstream_urls_are_refused(url):
    error = upstream_url_error(url)
    assert error is not None
    assert "metadata" in error or "link-local" in error


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9001", "https://api.example.com", "http://10.0.0.5"]
)
def test_ordinary_upstream_urls_pass(url):
    assert upstream_url_error(url) is None


def test_an_allowed_network_re_admits_a_link_local_range(settings):
    settings.GATEWAY_UPSTREAM_ALLOWED_NETWORKS = (ipaddress.ip_network("169.254.10.0/24"),)
    assert upstream_url_error("http://169.254.10.20:8080") is None
    assert address_blocked("169.254.169.254")


@pytest.mark.django_db
def test_config_import_refuses_a_metadata_service_and_writes_nothing():
    text = (
        "services:\n  - name: meta\n    url: http://169.254.169.254\n"
        "routes:\n  - path: /meta/**\n    service: meta\n"
    )
    with pytest.raises(ConfigInvalid) as caught:
        config_import(text=text)
    assert [e.location for e in caught.value.errors] == ["services[0].url"]
    assert not Service.objects.filter(name="meta").exists()


@pytest.mark.django_db
def test_management_api_refuses_a_metadata_service_with_400_problem(admin_user):
    client = APIClient()
    client.force_login(admin_user)
    response = client.post(
        "/api/gateway/services/",
        {"name": "meta", "url": "http://metadata.google.internal"},
        format="json",
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["url"]


@pytest.fixture(scope="module")
def guarded_gateway(django_db_setup, django_db_blocker, upstream_server) -> Iterator[GatewayServer]:
    """A gateway treating loopback as blocked, with a route to the upstream *by name*.

    The name passes validation (no DNS at validation time); what it resolves to is refused at
    connect time. Loopback stands in for a metadata address: tests reach loopback only.
    """
    with django_db_blocker.unblock():
        service = Service.objects.create(
            name="by-name", url=upstream_server.url.replace("127.0.0.1", "localhost")
        )
        Route.objects.create(path="/named/**", service=service, authentication="none")
        try:
            with GatewayServer(GATEWAY_UPSTREAM_BLOCKED_NETWORKS="127.0.0.0/8,::1/128") as server:
                yield server
        finally:
            Route.objects.filter(service=service).delete()
            service.delete()


@pytest.mark.e2e
@pytest.mark.django_db
def test_name_resolving_to_a_blocked_address_is_502_without_contact(guarded_gateway, upstream):
    answer = raw_exchange(guarded_gateway.port, get("/named/echo"))
    assert status_of(answer) == 502, answer[:300]
    problem = problem_of(answer)
    assert "127.0.0.1" not in problem["detail"]
    assert upstream.count() == 0
    assert "blocked address" in guarded_gateway.log()


@pytest.mark.django_db
def test_oauth_client_secret_is_stored_hashed():
    from oauth2_provider.models import Application

    secret = "client-secret-in-plain-0123456789"
    app = Application.objects.create(
        name="hashed",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret,
    )
    stored = Application.objects.get(pk=app.pk).client_secret
    assert app.hash_client_secret
    assert secret not in stored
    assert check_password(secret, stored)

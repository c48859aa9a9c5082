"""The one client-address rule and allow-list check (gateway_project/net.py), and its callers."""

from __future__ import annotations

import ipaddress

import pytest
from django.test import RequestFactory

from accounts import login_throttle
from gateway_project import net
from gateway_project.admin_plane import AdminNetworkMiddleware
from gateway_project.area_settings import AdminPlaneSettings, MetricsSettings
from gateway_project.metrics_view import metrics_access_denied
from routing.paths import pattern_errors

TRUSTED = [ipaddress.ip_network("10.0.0.0/8")]


@pytest.fixture
def trusted_proxies(settings):
    settings.GATEWAY_TRUSTED_PROXIES = TRUSTED
    return settings


@pytest.mark.parametrize(
    "remote, forwarded, expected",
    [
        # No header, or a header from an untrusted peer: the peer is the caller.
        ("203.0.113.5", None, "203.0.113.5"),
        ("203.0.113.5", "198.51.100.1", "203.0.113.5"),
        # A trusted proxy: the right-most hop it did not add itself.
        ("10.0.0.1", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.1", "6.6.6.6, 198.51.100.1, 10.0.0.2", "198.51.100.1"),
        # Every hop trusted: the left-most, the farthest address our proxies vouched for.
        ("10.0.0.1", "10.1.1.1, 10.0.0.2", "10.1.1.1"),
        # Nothing usable in the header: the peer.
        ("10.0.0.1", " , ,", "10.0.0.1"),
        # Garbage is never trusted, so it is the caller (and matches no allow-list).
        ("10.0.0.1", "not-an-ip", "not-an-ip"),
        ("10.0.0.1", "10.1.1.1, \x00", "\x00"),
    ],
)
def test_client_address_rule(trusted_proxies, remote, forwarded, expected):
    assert net.client_address(remote, forwarded) == expected


def test_without_trusted_proxies_the_header_is_never_believed(settings):
    settings.GATEWAY_TRUSTED_PROXIES = []
    assert net.client_address("10.0.0.1", "198.51.100.1") == "10.0.0.1"


@pytest.mark.parametrize(
    "forwarded",
    [None, "198.51.100.1", "10.1.1.1, 10.0.0.2", "6.6.6.6, 198.51.100.1", "", "x, 10.0.0.3"],
)
def test_login_throttling_and_rate_limits_key_on_the_same_address(trusted_proxies, forwarded):
    """Before the shared rule, login lockout used REMOTE_ADDR when every hop was trusted."""
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    request = RequestFactory().post("/auth/token/", REMOTE_ADDR="10.0.0.1", **extra)
    from_forwarding = net.client_address("10.0.0.1", forwarded)
    assert login_throttle.client_address(request) == from_forwarding
    assert net.request_client_address(request.META) == from_forwarding


def test_every_hop_trusted_locks_out_the_client_not_the_proxy(trusted_proxies):
    request = RequestFactory().post(
        "/auth/token/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="10.9.9.9, 10.0.0.2"
    )
    assert login_throttle.client_address(request) == "10.9.9.9"


@pytest.mark.parametrize(
    "address, inside",
    [("10.1.2.3", True), ("11.0.0.1", False), ("", False), ("10.0.0.1/8", False), ("::1", False)],
)
def test_address_in(address, inside):
    assert net.address_in(address, TRUSTED) is inside


def test_admin_plane_and_metrics_apply_the_same_allow_list_rule(settings):
    settings.GATEWAY_TRUSTED_PROXIES = TRUSTED
    networks = (ipaddress.ip_network("192.0.2.0/24"),)
    settings.GATEWAY_ADMIN_PLANE = AdminPlaneSettings(allowed_networks=networks)
    settings.GATEWAY_METRICS = MetricsSettings(allowed_networks=networks)
    middleware = AdminNetworkMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]
    factory = RequestFactory()
    for forwarded, allowed in [("192.0.2.7", True), ("198.51.100.1", False), ("10.1.1.1", False)]:
        admin = factory.get("/admin/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
        scrape = factory.get("/metrics", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
        admin_answer = middleware(admin)
        assert (admin_answer is None) is allowed
        assert (metrics_access_denied(scrape) is None) is allowed
        if not allowed:
            assert admin_answer.status_code == 403


@pytest.mark.parametrize(
    "path, reserved",
    [
        ("/admin", True),
        ("/admin/x", True),
        ("/administrator", False),
        ("/o/token/", True),
        ("/oauth/x", False),
        ("/metrics", True),
        ("/api/v1", False),
        ("/static/app.css", True),
    ],
)
def test_reserved_paths(path, reserved):
    assert net.is_reserved_path(path) is reserved


@pytest.mark.parametrize("prefix", net.RESERVED_PREFIXES)
def test_route_validation_refuses_every_reserved_prefix(prefix):
    errors = pattern_errors(prefix + "/**")
    assert any(f"shadows the gateway's own path {prefix}" in error for error in errors)


def test_the_admin_plane_is_inside_the_reserved_paths():
    for prefix in net.ADMIN_PLANE_PREFIXES + net.NOT_ADMIN_PLANE_PREFIXES:
        assert net.is_reserved_path(prefix.rstrip("/"))
    assert net.is_admin_plane_path("/api/gateway/routes/")
    assert not net.is_admin_plane_path("/api/gateway/registry/targets")

"""The proxy's host check: Django's verdict, run once per accepted raw host."""

from __future__ import annotations

import pytest
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from gateway_project import middleware
from gateway_project.middleware import AllowedHostMiddleware


@pytest.fixture(autouse=True)
def no_accepted_hosts():
    middleware._ACCEPTED_HOSTS.clear()
    yield
    middleware._ACCEPTED_HOSTS.clear()


def _request(host: str, forwarded_host: str | None) -> HttpRequest:
    extra = {} if forwarded_host is None else {"HTTP_X_FORWARDED_HOST": forwarded_host}
    return RequestFactory().get("/svc/x", HTTP_HOST=host, **extra)  # type: ignore[arg-type]


def _check(host: str, forwarded_host: str | None = None) -> bool:
    """True when the middleware lets a request with this Host through, False on DisallowedHost."""
    passed: list[HttpRequest] = []

    def view(request: HttpRequest) -> HttpResponse:
        passed.append(request)
        return HttpResponse()

    check = AllowedHostMiddleware(view)
    request = _request(host, forwarded_host)
    try:
        check(request)
    except DisallowedHost:
        return False
    assert passed == [request]
    return True


def _django_verdict(host: str) -> bool:
    try:
        _request(host, None).get_host()
    except DisallowedHost:
        return False
    return True


HOSTS = [
    "gw.example.test",
    "gw.example.test:8443",
    "GW.EXAMPLE.TEST",
    "api.wild.test",
    "wild.test",
    "evil.test",
    "gw.example.test.evil.test",
    "[::1]",
    "[::1]:80",
    "127.0.0.1",
    "localhost",
    "x.localhost",
    "bad host",
    "gw.example.test:port",
    "",
    "a" * 300,
]


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("allowed", [["gw.example.test", ".wild.test"], ["*"], []])
def test_the_verdict_is_djangos_the_first_time_and_every_time_after(settings, debug, allowed):
    settings.DEBUG, settings.ALLOWED_HOSTS = debug, allowed
    for _ in range(3):
        for host in HOSTS:
            assert _check(host) is _django_verdict(host), host


def test_an_accepted_host_is_remembered_and_a_refused_one_never(settings):
    settings.ALLOWED_HOSTS = ["gw.example.test"]
    assert _check("gw.example.test")
    assert not _check("evil.test")
    assert {"gw.example.test"} == middleware._ACCEPTED_HOSTS


def test_a_remembered_host_is_refused_once_allowed_hosts_no_longer_name_it(settings):
    settings.ALLOWED_HOSTS = ["gw.example.test", "old.example.test"]
    assert _check("old.example.test")
    settings.ALLOWED_HOSTS = ["gw.example.test"]
    assert not _check("old.example.test")


def test_debug_turned_off_forgets_the_localhost_variants(settings):
    settings.DEBUG, settings.ALLOWED_HOSTS = True, []
    assert _check("localhost")
    settings.DEBUG = False
    assert not _check("localhost")


def test_the_forwarded_host_is_checked_when_it_is_the_host_django_uses(settings):
    settings.ALLOWED_HOSTS = ["gw.example.test"]
    settings.USE_X_FORWARDED_HOST = False
    assert _check("gw.example.test", forwarded_host="evil.test")
    settings.USE_X_FORWARDED_HOST = True
    assert not _check("gw.example.test", forwarded_host="evil.test")
    assert _check("evil.test", forwarded_host="gw.example.test")


def test_the_memory_is_bounded_when_a_wildcard_admits_any_name(settings):
    settings.ALLOWED_HOSTS = [".wild.test"]
    for number in range(middleware._ACCEPTED_HOSTS_LIMIT + 10):
        assert _check(f"h{number}.wild.test")
    assert len(middleware._ACCEPTED_HOSTS) <= middleware._ACCEPTED_HOSTS_LIMIT
    assert "h0.wild.test" not in middleware._ACCEPTED_HOSTS


def test_a_host_longer_than_a_dns_name_is_checked_every_time_not_remembered(settings):
    settings.ALLOWED_HOSTS = ["*"]
    long_host = "a" * 8000
    assert _check(long_host)
    assert _check("gw.example.test")
    assert {"gw.example.test"} == middleware._ACCEPTED_HOSTS


def test_a_host_checked_while_allowed_hosts_change_is_not_remembered(settings):
    # A thread checks a host under the old ALLOWED_HOSTS; the settings change (and the memory
    # is cleared) before it records the host: the stale verdict must not be kept.
    settings.ALLOWED_HOSTS = ["old.example.test"]
    request = RequestFactory().get("/svc/x", HTTP_HOST="old.example.test")
    real_get_host = request.get_host

    def get_host_then_settings_change():
        host = real_get_host()
        settings.ALLOWED_HOSTS = ["new.example.test"]  # another thread's change
        return host

    request.get_host = get_host_then_settings_change  # type: ignore[method-assign]
    middleware.AllowedHostMiddleware(lambda r: None)(request)  # type: ignore[arg-type,return-value]
    assert "old.example.test" not in middleware._ACCEPTED_HOSTS

"""The admin plane on the wire: source-address restriction, cookies, lockout, security headers."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from accounts.models import User
from routing.models import Route, Service
from tests.security.wire import get, header_of, problem_of, raw_exchange, status_of
from tests.support.gateway_server import ROOT, GatewayServer, gateway_env

pytestmark = pytest.mark.e2e
# The console's tests log in: the server writes sessions and lockouts, which an open test
# transaction would block on SQLite. They run transactional (no wrapping transaction).
console_test = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery staple 9"


@pytest.fixture(scope="module")
def closed_gateway(django_db_setup, django_db_blocker, upstream_server) -> Iterator[GatewayServer]:
    """A gateway whose admin plane is open only to 10.0.0.0/8 (tests come from 127.0.0.1)."""
    with django_db_blocker.unblock():
        service = Service.objects.create(name="plane", url=upstream_server.url)
        Route.objects.create(path="/plane/**", service=service, authentication="none")
        try:
            with GatewayServer(GATEWAY_ADMIN_ALLOWED_NETWORKS="10.0.0.0/8") as server:
                yield server
        finally:
            Route.objects.filter(service=service).delete()
            service.delete()


def _collect_static() -> None:
    """The console's CSS as `make run` serves it (outside DEBUG, hashed names need the manifest)."""
    if (settings.STATIC_ROOT / "staticfiles.json").exists():
        return
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=gateway_env(),
        check=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def console(django_db_setup) -> Iterator[GatewayServer]:
    """A production-like gateway: DEBUG off, Secure cookies by default, lockout after 3 tries."""
    _collect_static()
    server = GatewayServer(
        DEBUG="false",
        GATEWAY_ADMIN_ALLOWED_NETWORKS="127.0.0.1/32,::1/128",
        LOGIN_FAILURE_LIMIT="3",
    )
    server.env.pop("GATEWAY_SECURE_COOKIES")  # the production default, not the lab's
    with server:
        yield server


@pytest.fixture
def staff(console) -> None:
    """Two staff accounts (per test: transactional tests empty the database after each)."""
    # Hashed as the server's production settings can verify (the tests' MD5 is test-only).
    hashed = PBKDF2PasswordHasher().encode(PASSWORD, "securitysalt", iterations=1000)
    for name in ("secadmin", "victim"):
        User.objects.create(username=name, password=hashed, is_staff=True)


@pytest.mark.parametrize(
    "path",
    ["/admin/", "/admin/login/", "/api/gateway/services/", "/api/docs", "/api/openapi.json"],
)
@pytest.mark.django_db
def test_admin_plane_from_outside_the_allowed_networks_is_403_problem(closed_gateway, path):
    answer = raw_exchange(closed_gateway.port, get(path))
    assert status_of(answer) == 403, answer[:300]
    assert problem_of(answer)["code"] == "admin_address_forbidden"


@pytest.mark.parametrize("path", ["/health", "/plane/echo", "/api/gateway/registry/services/x"])
@pytest.mark.django_db
def test_proxy_health_and_registry_stay_reachable_when_the_admin_plane_is_closed(
    closed_gateway, upstream, path
):
    answer = raw_exchange(closed_gateway.port, get(path))
    assert status_of(answer) != 403 or b"admin_address_forbidden" not in answer, answer[:300]
    assert status_of(answer) < 500


def _set_cookies(response: http.client.HTTPResponse) -> dict[str, str]:
    return {v.split("=", 1)[0]: v for v in response.headers.get_all("Set-Cookie") or []}


def _login(server: GatewayServer, username: str, password: str) -> http.client.HTTPResponse:
    # http.client, not requests: requests would not send a Secure cookie back over http.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/admin/login/")
    page = conn.getresponse()
    html = page.read().decode()
    csrf_cookie = _set_cookies(page)["csrftoken"]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert token is not None
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token[1], "username": username, "password": password}
    )
    conn.request(
        "POST",
        "/admin/login/?next=/admin/",
        body=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": csrf_cookie.split(";", 1)[0],
        },
    )
    response = conn.getresponse()
    response.read()
    return response


def _attributes(set_cookie: str) -> set[str]:
    return {part.strip().lower() for part in set_cookie.split(";")[1:]}


@console_test
def test_session_and_csrf_cookies_are_secure_httponly_samesite_outside_debug(console, staff):
    response = _login(console, "secadmin", PASSWORD)
    assert response.status == 302, response.status
    cookies = _set_cookies(response)
    for name in ("sessionid", "csrftoken"):
        attributes = _attributes(cookies[name])
        assert {"secure", "httponly", "samesite=lax"} <= attributes, cookies[name]


@console_test
def test_console_login_locks_out_after_the_failure_limit(console, staff):
    statuses = [_login(console, "victim", "wrong password").status for _ in range(3)]
    assert statuses[:2] == [200, 200]  # the form again, with an error
    locked = _login(console, "victim", PASSWORD)  # even the right password now
    assert locked.status == 429
    assert locked.headers["Retry-After"]


@console_test
def test_console_pages_carry_csp_and_security_headers(console, staff):
    answer = raw_exchange(console.port, get("/admin/login/"))
    assert status_of(answer) == 200
    csp = header_of(answer, "Content-Security-Policy") or ""
    assert "script-src 'self' 'nonce-" in csp
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    assert header_of(answer, "X-Frame-Options") == "DENY"
    assert header_of(answer, "X-Content-Type-Options") == "nosniff"
    assert header_of(answer, "Referrer-Policy") == "same-origin"
    assert header_of(answer, "Permissions-Policy")


@console_test
def test_api_docs_inline_script_carries_the_pages_nonce(console, staff):
    answer = raw_exchange(console.port, get("/api/docs"))
    assert status_of(answer) == 200
    nonce = re.search(r"'nonce-([^']+)'", header_of(answer, "Content-Security-Policy") or "")
    assert nonce is not None
    assert f'<script nonce="{nonce[1]}">'.encode() in answer


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="no Chromium on this machine")
@console_test
def test_console_and_docs_pages_run_in_chromium_without_csp_violations(console, staff):
    from playwright.sync_api import sync_playwright

    # localhost, not 127.0.0.1: Chromium keeps Secure cookies set over http only for localhost.
    base = console.url.replace("127.0.0.1", "localhost")
    violations: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda message: (
                    violations.append(message.text)
                    if "Content Security Policy" in message.text
                    else None
                ),
            )
            page.goto(f"{base}/admin/login/")
            page.fill("#id_username", "secadmin")
            page.fill("#id_password", PASSWORD)
            with page.expect_navigation():
                page.click("input[type=submit]")
            assert page.url.endswith("/admin/"), (
                page.url,
                page.inner_text("body")[:600],
                violations,
            )
            page.goto(f"{base}/api/docs")
            page.wait_for_selector(".swagger-ui .info", timeout=15000)
            page.goto(f"{base}/api/redoc")
            page.wait_for_selector("#redoc-container h1, redoc h1, .api-content", timeout=15000)
        finally:
            browser.close()
    # ReDoc's footer logo comes from its CDN: blocked, as the gateway serves no CDN content.
    unexpected = [v for v in violations if "https://cdn.redoc.ly/" not in v]
    assert not unexpected, unexpected

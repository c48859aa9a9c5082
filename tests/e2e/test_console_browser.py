"""The console in a real headless Chromium against gunicorn on loopback and a real upstream.

With GATEWAY_SCREENSHOTS=1 (`make screenshots`) it saves docs/screenshots/console-*.png for the
README; `make test` writes no tracked file. Skipped (with the reason) only when /usr/bin/chromium
is missing; .ci/run installs it so CI never skips.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Group
from django.db import connections

from accounts.models import User
from audit.roles import VIEWER, ensure_console_groups
from routing.models import Route
from tests.support.gateway_server import ROOT, GatewayServer

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "docs" / "screenshots"
POLL_SECONDS = 0.2  # GATEWAY_CONFIG_POLL of the test servers
SLACK_SECONDS = 3.0  # a loaded two-core machine: scheduling beyond the poll interval
ADMIN_PW = "console-browser-pw-1"  # throw-away users of a test database
VIEWER_PW = "console-viewer-pw-1"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no Chromium at /usr/bin/chromium: install it with "
        "`apt-get install -y chromium` to run the console browser tests",
    ),
]


def _get(base_url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path, headers={"Connection": "close", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _wait_for(base_url: str, path: str, status: int, **headers: str) -> float:
    """Seconds until `path` answers `status` through the proxy; fails after poll + slack."""
    start = time.monotonic()
    deadline = start + POLL_SECONDS + SLACK_SECONDS
    while True:
        got, body = _get(base_url, path, headers)
        if got == status:
            return time.monotonic() - start
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} still answers {got} (wanted {status}): {body[:300]!r}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def collected_static() -> None:
    """The console's static files, collected as `make run` and the image build do."""
    if (ROOT / "var" / "static" / "staticfiles.json").exists():
        return
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "gateway_project.settings"},
        check=True,
        timeout=120,
    )


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still plain synchronous code, which Django would otherwise refuse in that loop.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()
            # Connections opened while Playwright's loop ran live in their own context: close
            # them here, or the test database cannot be dropped at the end of the session.
            connections.close_all()


@pytest.fixture
def gateway(collected_static: None) -> Iterator[GatewayServer]:
    """One gunicorn gateway sharing the test database (and Redis, when configured)."""
    with GatewayServer() as server:
        yield server


def _user(username: str, password: str, *, superuser: bool = False) -> User:
    hasher = PBKDF2PasswordHasher()  # the servers' hasher, not the tests' fast one
    return User.objects.create(
        username=username,
        is_staff=True,
        is_superuser=superuser,
        password=hasher.encode(password, hasher.salt()),
    )


class Console:
    """One signed-in browser tab on the console."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base = base_url

    def open(self, path: str) -> None:
        """Load a console page."""
        self.page.goto(self.base + path)

    def login(self, username: str, password: str) -> None:
        """Sign in through the login form."""
        self.open("/admin/login/?next=/admin/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("input[type=submit]")
        self.page.wait_for_selector("#site-name")
        assert "/admin/login/" not in self.page.url, self.page.content()[:2000]

    def save(self) -> str:
        """Click Save; the success (or warning) messages shown next."""
        self.page.click("input[name=_save]")
        self.page.wait_for_load_state()
        errors = self.page.locator(".errornote, .errorlist").all_inner_texts()
        assert not errors, errors
        return " ".join(self.page.locator("ul.messagelist li").all_inner_texts())

    def choose_service(self, name: str) -> None:
        """Pick the service in the route form's autocomplete (select2) box."""
        self.page.click(".field-service .select2-selection")
        self.page.fill(".select2-search__field", name)
        self.page.locator(".select2-results__option", has_text=name).first.click()

    def shot(self, name: str) -> None:
        """Save a full-page screenshot for the README, when asked to (GATEWAY_SCREENSHOTS=1)."""
        if os.environ.get("GATEWAY_SCREENSHOTS") != "1":
            return
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"console-{name}.png"), full_page=True)


def test_console_in_a_real_browser_from_login_to_rollback_keys_explain_and_viewer(
    browser, gateway, upstream
):
    ensure_console_groups()  # a flushed test database has them back only after post_migrate
    _user("admin", ADMIN_PW, superuser=True)
    _user("vera", VIEWER_PW).groups.add(Group.objects.get(name=VIEWER))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(10_000)
    console = Console(page, gateway.url)

    console.login("admin", ADMIN_PW)
    assert page.locator("#gateway-tools >> text=Recent changes").count() == 1

    # A service and a route, served through the proxy within the poll interval.
    console.open("/admin/routing/service/add/")
    page.fill("#id_name", "shop")
    page.fill("#id_url", upstream.url)
    assert "was added successfully" in console.save()

    console.open("/admin/routing/route/add/")
    page.fill("#id_path", "/api/v1/shop/**")
    console.choose_service("shop")
    page.select_option("#id_authentication", "none")
    assert "was added successfully" in console.save()
    _wait_for(gateway.url, "/api/v1/shop/items", 200)  # fails after poll interval + slack
    status, body = _get(gateway.url, "/api/v1/shop/items")
    assert status == 200 and json.loads(body)["path"] == "/api/v1/shop/items"

    # Edit it with a reason; the proxy follows; the history shows the diff.
    route = Route.objects.get(path="/api/v1/shop/**")
    console.open(f"/admin/routing/route/{route.pk}/change/")
    page.fill("#id_path", "/api/v1/store/**")
    page.fill("#id__change_reason", "rename the shop")
    assert "was changed successfully" in console.save()
    _wait_for(gateway.url, "/api/v1/store/items", 200)
    assert _get(gateway.url, "/api/v1/shop/items")[0] == 404

    console.open(f"/admin/routing/route/{route.pk}/history/")
    newest = page.locator("tr.history-row").first
    assert "rename the shop" in newest.inner_text()
    assert newest.locator("del").first.inner_text() == "/api/v1/shop/**"
    assert newest.locator("ins").first.inner_text() == "/api/v1/store/**"
    console.shot("history")

    # One click rolls back to the version before the edit; recorded; the proxy follows.
    rows = page.locator("tr.history-row")
    rows.nth(1).locator("input[name=reason]").fill("store URL not announced yet")
    rows.nth(1).locator("button.restore").click()
    page.wait_for_load_state()
    assert "Rolled back" in page.locator("ul.messagelist").inner_text()
    _wait_for(gateway.url, "/api/v1/shop/items", 200)
    assert _get(gateway.url, "/api/v1/store/items")[0] == 404
    assert "rollback of route" in page.locator("tr.history-row").first.inner_text()

    # A role, a user, an API client with that role, and a key that opens a keyed route.
    console.open("/admin/accounts/role/add/")
    page.fill("#id_name", "shopper")
    page.fill("#id_description", "May call the shop API")
    assert "was added successfully" in console.save()
    console.open("/admin/accounts/user/add/")
    page.fill("#id_username", "carl")
    for field in ("#id_password1", "#id_password2"):
        if page.locator(field).count():
            page.fill(field, "carl-browser-pw-42")
    assert "was added successfully" in console.save()
    console.open("/admin/accounts/apiclient/add/")
    page.fill("#id_name", "shop-app")
    page.locator("#id_roles_from option", has_text="shopper").dblclick()
    assert "was added successfully" in console.save()
    console.open("/admin/accounts/apikey/add/")
    page.select_option("#id_client", label="shop-app")
    page.fill("#id_name", "ci")
    shown = console.save()
    key = re.search(r"The new API key is (\S+)", shown)
    assert key, shown
    console.open("/admin/routing/route/add/")
    page.fill("#id_path", "/api/v1/keyed/**")
    console.choose_service("shop")
    page.select_option("#id_authentication", "required")
    page.locator("#id_roles_from option", has_text="shopper").dblclick()
    assert "was added successfully" in console.save()
    _wait_for(gateway.url, "/api/v1/keyed/x", 200, **{"X-API-Key": key.group(1)})
    assert _get(gateway.url, "/api/v1/keyed/x")[0] == 401

    # Explain, with the key, without calling the upstream.
    calls_before = upstream.count("/api/v1/keyed")
    console.open("/admin/gateway/explain/")
    page.fill("#id_path", "/api/v1/keyed/x")
    page.fill("#id_headers", f"X-API-Key: {key.group(1)}")
    page.click("input[value=Explain]")
    page.wait_for_selector("#verdict")
    report = page.locator("#explain-report").inner_text()
    assert "/api/v1/keyed/**" in report
    assert "forwarded to the upstream" in page.locator("#verdict").inner_text()
    assert key.group(1) not in page.url  # the credential travels in the POST body only
    assert upstream.count("/api/v1/keyed") == calls_before
    console.shot("explain")

    console.open("/admin/gateway/history/")
    console.shot("recent-changes")

    # A viewer sees everything and can change nothing.
    viewer_page = browser.new_page(viewport={"width": 1280, "height": 900})
    viewer_page.set_default_timeout(10_000)
    viewer = Console(viewer_page, gateway.url)
    viewer.login("vera", VIEWER_PW)
    viewer.open(f"/admin/routing/route/{route.pk}/change/")
    assert viewer_page.locator("input[name=_save]").count() == 0
    viewer.shot("viewer")
    viewer.open(f"/admin/routing/route/{route.pk}/history/")
    assert viewer_page.locator("button.restore").count() == 0
    response = viewer_page.goto(f"{gateway.url}/admin/routing/route/add/")
    assert response is not None and response.status == 403

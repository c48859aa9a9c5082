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
# A loaded two-core machine: scheduling beyond the poll interval. A verdict on "the change
# arrives", not a speed check (the poll bound itself: tests/routing/test_config_version.py).
SLACK_SECONDS = 15.0
ADMIN_PW = "console-browser-pw-1"  # throw-away users of a test database
VIEWER_PW = "console-viewer-pw-1"
LOGIN_TIMEOUT_MS = 60_000
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

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


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright, started once per test module."""
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as monkeypatch:
        # Playwright's sync API runs an event loop in this thread; the tests' own ORM calls are
        # still plain synchronous code, which Django would otherwise refuse in that loop.
        monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                yield launched
            finally:
                launched.close()
                # Connections opened while Playwright's loop ran live in their own context:
                # close them here, or the test database cannot be dropped after the session.
                connections.close_all()


@pytest.fixture
def browser(chromium: Any) -> Iterator[Any]:
    """The module's Chromium; every page (and its context) a test opens is closed after it."""
    before = set(chromium.contexts)
    yield chromium
    for context in chromium.contexts:
        if context not in before:
            context.close()


@pytest.fixture
def gateway(collected_static: None) -> Iterator[GatewayServer]:
    """One gunicorn gateway sharing the test database (and Redis, when configured)."""
    with GatewayServer() as server:
        yield server


def _user(username: str, password: str, *, superuser: bool = False) -> User:
    # The servers' hasher, not the tests' fast one; few rounds, as the other e2e tests do: the
    # servers verify it with the rounds it names (and upgrade it to their own cost on login).
    hasher = PBKDF2PasswordHasher()
    return User.objects.create(
        username=username,
        is_staff=True,
        is_superuser=superuser,
        password=hasher.encode(password, hasher.salt(), iterations=1000),
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
        # The password hash (PBKDF2, the servers' real cost) is slow on a loaded CI machine.
        self.page.click("input[type=submit]", timeout=LOGIN_TIMEOUT_MS)
        self.page.wait_for_selector("#site-name", timeout=LOGIN_TIMEOUT_MS)
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


# --- the console as a product: sidebar, first run, undo with a reason, and a crawl ------------

OPERATOR_PW = "console-operator-pw-1"
# Pages written by the gateway or a third-party app only: their add page is refused to everyone.
NEVER_ADDED = frozenset(
    {
        "quotas.usage",
        "quotas.quotaadjustment",
        "quotas.userquotastatus",
        "quotas.clientquotastatus",
        "axes.accessattempt",
        "axes.accesslog",
        "axes.accessfailurelog",
        "token_blacklist.outstandingtoken",
        # django-oauth-toolkit: tokens and codes are issued by the OAuth flows only.
        "oauth2_provider.accesstoken",
        "oauth2_provider.refreshtoken",
        "oauth2_provider.idtoken",
        "oauth2_provider.grant",
    }
)


class PageWatch:
    """Everything that went wrong while one page loaded: console errors, 4xx/5xx, off-site."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.base = base_url
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("response", self._response)
        page.on("requestfailed", self._failed)
        page.on("request", self._request)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.problems.append(f"console: {message.text}")

    def _failed(self, request: Any) -> None:
        # ERR_ABORTED: the next navigation cancelled a load still under way (not an answer);
        # error answers are caught as responses, refused ones (CSP) as console errors.
        if "ERR_ABORTED" not in (request.failure or ""):
            self.problems.append(f"failed: {request.url} {request.failure}")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.problems.append(f"{response.status}: {response.url}")

    def _request(self, request: Any) -> None:
        if not request.url.startswith((self.base, "data:", "blob:")):
            self.problems.append(f"off-site request: {request.url}")

    def visit(self, page: Any, path: str, *, idle: bool = False) -> tuple[int, list[str]]:
        """Open `path` (Playwright's sync API); (its status, what went wrong while it loaded)."""
        self.problems = []
        response = page.goto(self.base + path, wait_until="networkidle" if idle else "load")
        assert response is not None, path
        return response.status, list(self.problems)

    async def visit_async(
        self, page: Any, path: str, *, idle: bool = False
    ) -> tuple[int, list[str]]:
        """`visit` in Playwright's async API (the crawl's parallel tabs)."""
        self.problems = []
        response = await page.goto(self.base + path, wait_until="networkidle" if idle else "load")
        assert response is not None, path
        return response.status, list(self.problems)


def _crawl_data(upstream_url: str) -> None:
    """One object of every model the console lists, so each has a change page to open."""
    from datetime import timedelta

    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django.utils import timezone
    from oauth2_provider.models import (
        get_access_token_model,
        get_application_model,
        get_grant_model,
        get_id_token_model,
        get_refresh_token_model,
    )
    from rest_framework_simplejwt.token_blacklist.models import (
        BlacklistedToken,
        OutstandingToken,
    )

    from accounts.models import ApiClient, Permission, Role
    from accounts.services import api_key_create
    from audit.changesets import recording
    from quotas.models import Quota, QuotaAdjustment, Usage
    from routing.models import Service

    admin_user = User.objects.get(username="admin")
    later = timezone.now() + timedelta(days=1)
    with recording(user=admin_user, reason="crawl data"):
        shop = Service.objects.create(name="shop", url=upstream_url, openapi="/openapi.json")
        Route.objects.create(path="/api/v1/shop/**", service=shop, authentication="none")
        permission = Permission.objects.create(name="read:shop")
        role = Role.objects.create(name="shopper")
        role.permissions.add(permission)
        client = ApiClient.objects.create(name="shop-app")
        client.roles.add(role)
        Quota.objects.create(role=role, requests_per_day=100)
    customer = User.objects.create(username="carl")
    customer.roles.add(role)
    api_key_create(client=client, name="ci")
    Usage.objects.create(
        day=timezone.now().date(),
        consumer_kind="client",
        consumer_id="shop-app",
        consumer_name="shop-app",
        route_id=1,
        route_name="ANY /api/v1/shop/**",
        requests=18,
    )
    QuotaAdjustment.objects.create(
        consumer_kind="client",
        consumer_id="shop-app",
        consumer_name="shop-app",
        action="reset",
        period="day",
        reason="crawl",
        created_by=admin_user,
    )
    app = get_application_model().objects.create(
        name="shop-web",
        client_type="confidential",
        authorization_grant_type="authorization-code",
        redirect_uris="https://app.example/cb",
        user=admin_user,
    )
    get_grant_model().objects.create(
        user=customer,
        application=app,
        code="crawl-code",
        expires=later,
        redirect_uri="https://app.example/cb",
    )
    access = get_access_token_model().objects.create(
        user=customer, application=app, token="crawl-access", expires=later, scope="read"
    )
    get_refresh_token_model().objects.create(
        user=customer, application=app, token="crawl-refresh", access_token=access
    )
    get_id_token_model().objects.create(user=customer, application=app, expires=later)
    outstanding = OutstandingToken.objects.create(
        user=customer, jti="crawl-jti", token="crawl.token.value", expires_at=later
    )
    BlacklistedToken.objects.create(token=outstanding)
    attempt = {"user_agent": "crawl", "ip_address": "192.0.2.1", "username": "ghost"}
    attempt.update(http_accept="*/*", path_info="/admin/login/")
    AccessAttempt.objects.create(**attempt, get_data="", post_data="", failures_since_start=1)
    AccessLog.objects.create(**attempt)
    AccessFailureLog.objects.create(**attempt)


def _crawl_paths() -> list[tuple[str, str, str]]:
    """(path, kind, model label) of every console page: lists, add and change pages per model,
    object histories, the gateway's own pages and the docs."""
    from django.contrib import admin

    from audit.views import HistoryAdminMixin

    paths: list[tuple[str, str, str]] = [
        ("/admin/", "page", ""),
        ("/admin/gateway/explain/", "page", ""),
        ("/admin/gateway/config/", "page", ""),
        ("/admin/gateway/cluster/", "page", ""),
        ("/admin/gateway/first-run/", "page", ""),
        ("/admin/gateway/history/", "page", ""),
        ("/admin/mfa/", "page", ""),
        ("/admin/mfa/devices/", "page", ""),
        ("/admin/password_change/", "page", ""),
        ("/admin/logout/", "page", ""),
    ]
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        base = f"/admin/{meta.app_label}/{meta.model_name}/"
        paths.append((base, "list", meta.label_lower))
        paths.append((base + "add/", "add", meta.label_lower))
        first = model._default_manager.order_by("pk").first()
        assert first is not None, f"no {meta.label_lower} to open: add one in _crawl_data"
        paths.append((f"{base}{first.pk}/change/", "change", meta.label_lower))
        if isinstance(model_admin, HistoryAdminMixin):
            paths.append((f"{base}{first.pk}/history/", "history", meta.label_lower))
    return paths


def _expected_status(path: str, kind: str, label: str, level: str) -> int:
    """What the table in audit/authority.py lets `level` open: everyone views everything;
    add pages need the table's add right, and history-only pages are never added to."""
    from audit.authority import Actor, may, section_for_model

    if kind != "add":
        return 200
    if label in NEVER_ADDED:
        return 403
    from django.apps import apps

    section = section_for_model(apps.get_model(label))
    return 200 if may(Actor("crawler", level), "add", section) else 403


# Tabs per user loading pages at once: the crawl waits on the server and on Chromium in turn,
# so a few pages in flight keep both busy (the test servers run 2 workers x 4 threads).
CRAWL_TABS = 2


async def _crawl_as(
    chromium: Any, base_url: str, username: str, password: str, visits: list[tuple[str, int, bool]]
) -> tuple[int, list[str]]:
    """Sign in as `username` in a fresh context and open every (path, expected status, idle)
    in CRAWL_TABS tabs of that context; (pages visited, what went wrong)."""
    import asyncio

    context = await chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        login = await context.new_page()
        login.set_default_timeout(LOGIN_TIMEOUT_MS)
        await login.goto(base_url + "/admin/login/?next=/admin/")
        await login.fill("#id_username", username)
        await login.fill("#id_password", password)
        await login.click("input[type=submit]")
        await login.wait_for_selector("#site-name")
        assert "/admin/login/" not in login.url, (await login.content())[:2000]
        await login.close()

        queue = list(reversed(visits))
        failures: list[str] = []
        visited = 0

        async def tab() -> None:
            nonlocal visited
            page = await context.new_page()
            page.set_default_timeout(15_000)
            watch = PageWatch(page, base_url)  # one watch per tab: problems land on their page
            while queue:
                path, expected, idle = queue.pop()
                status, problems = await watch.visit_async(page, path, idle=idle)
                visited += 1
                if expected == 403:  # the refused page itself is the one expected 4xx
                    problems = [p for p in problems if "403" not in p]
                if status != expected or problems:
                    failures.append(f"{path}: {status} (expected {expected}) {problems}")
            await page.close()

        await asyncio.gather(*(tab() for _ in range(CRAWL_TABS)))
        return visited, failures
    finally:
        await context.close()


async def _crawl(base_url: str, users: list[tuple[str, str, list[tuple[str, int, bool]]]]) -> Any:
    """Every user's crawl at the same time, in one Chromium of their own (async Playwright)."""
    import asyncio

    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            return await asyncio.gather(
                *(_crawl_as(chromium, base_url, name, pw, visits) for name, pw, visits in users)
            )
        finally:
            await chromium.close()


def test_every_console_page_opens_cleanly_for_admin_operator_and_viewer(gateway, upstream):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from audit.authority import OPERATOR_LEVEL, SUPERUSER, VIEWER_LEVEL
    from audit.roles import OPERATOR

    ensure_console_groups()
    _user("admin", ADMIN_PW, superuser=True)
    _user("otto", OPERATOR_PW).groups.add(Group.objects.get(name=OPERATOR))
    _user("vera", VIEWER_PW).groups.add(Group.objects.get(name=VIEWER))
    _crawl_data(upstream.url)
    paths = _crawl_paths()
    docs = ["/api/docs", "/api/redoc"]  # waited for until the network is idle

    # Everything that needs the database first; the browsers need nothing from it.
    users = []
    for username, password, level in (
        ("admin", ADMIN_PW, SUPERUSER),
        ("otto", OPERATOR_PW, OPERATOR_LEVEL),
        ("vera", VIEWER_PW, VIEWER_LEVEL),
    ):
        visits = [(p, _expected_status(p, k, lab, level), False) for p, k, lab in paths]
        visits += [(path, 200, True) for path in docs]
        users.append((username, password, visits))

    # Async Playwright in a thread of its own: this thread may hold the sync API's event loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        results = pool.submit(asyncio.run, _crawl(gateway.url, users)).result()

    report: dict[str, int] = {}
    for (username, _, visits), (visited, failures) in zip(users, results, strict=True):
        assert not failures, f"{username}:\n" + "\n".join(sorted(failures))
        assert visited == len(visits), (username, visited, len(visits))
        report[username] = visited
    print(f"crawl: pages visited per user {report}")  # the count the report quotes
    assert all(count > 60 for count in report.values()), report


def test_sidebar_shows_the_gateway_sections_first(browser, gateway):
    from management.console_site import GATEWAY_SECTIONS

    _user("admin", ADMIN_PW, superuser=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(10_000)
    console = Console(page, gateway.url)
    console.login("admin", ADMIN_PW)
    console.open("/admin/routing/route/")
    page.wait_for_selector("#nav-sidebar")
    headings = page.locator("#nav-sidebar caption a.section").all_text_contents()
    assert headings == [heading for _, heading, _ in GATEWAY_SECTIONS] + ["Advanced"]
    first_rows = page.locator("#nav-sidebar .app-gateway-traffic th a").all_text_contents()
    assert first_rows == ["Services", "Routes"]
    # The home page uses the whole width: no "Recent actions" column beside the content.
    console.open("/admin/")
    assert page.locator("#recent-actions-module").count() == 0
    assert page.evaluate("document.querySelector('#content').offsetWidth") > 1000
    console.open("/admin/routing/route/")
    console.shot("sidebar")


def test_first_run_from_an_empty_database_to_a_proxied_200(browser, gateway, upstream):
    _user("admin", ADMIN_PW, superuser=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(10_000)
    console = Console(page, gateway.url)
    console.login("admin", ADMIN_PW)
    assert page.locator("#first-run-form").count() == 1  # no service yet
    page.fill("#id_name", "shop")
    page.fill("#id_url", upstream.url)
    page.fill("#id_path", "/api/v1/shop/**")
    page.select_option("#id_authentication", "none")
    console.shot("first-run")
    page.click("#first-run-form input[type=submit]")
    page.wait_for_selector("#first-run-curl")
    curl = page.locator("#first-run-curl").inner_text().strip()
    assert curl == f"curl -i {gateway.url}/api/v1/shop/example"
    path = curl.removeprefix(f"curl -i {gateway.url}")
    _wait_for(gateway.url, path, 200)  # fails after the poll interval + slack
    status, body = _get(gateway.url, path)
    assert status == 200 and json.loads(body)["path"] == "/api/v1/shop/example"
    console.open("/admin/")
    assert page.locator("#first-run-form").count() == 0  # a service exists now

    # The route page: its live traffic (the request above) and the explain box.
    route = Route.objects.get(path="/api/v1/shop/**")
    console.open(f"/admin/routing/route/{route.pk}/change/")
    hour = page.locator("#route-traffic tr[data-window=last-hour] .gw-requests")
    assert int(hour.inner_text()) >= 1
    assert page.locator("#id_explain_path").input_value() == "/api/v1/shop/example"
    console.shot("route")
    page.click("#route-explain-form input[type=submit]")
    page.wait_for_selector("#verdict")
    assert "/api/v1/shop/**" in page.locator("#explain-report").inner_text()


def test_undo_of_a_change_set_records_the_typed_reason(browser, gateway, upstream):
    _user("admin", ADMIN_PW, superuser=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(10_000)
    console = Console(page, gateway.url)
    console.login("admin", ADMIN_PW)
    console.open("/admin/gateway/first-run/")
    page.fill("#id_name", "shop")
    page.fill("#id_url", upstream.url)
    page.fill("#id_path", "/api/v1/shop/**")
    page.select_option("#id_authentication", "none")
    page.click("#first-run-form input[type=submit]")
    page.wait_for_selector("#first-run-curl")
    _wait_for(gateway.url, "/api/v1/shop/x", 200)

    route = Route.objects.get(path="/api/v1/shop/**")
    console.open(f"/admin/routing/route/{route.pk}/change/")
    page.fill("#id_path", "/api/v1/store/**")
    page.fill("#id__change_reason", "rename the shop")
    assert "was changed successfully" in console.save()
    _wait_for(gateway.url, "/api/v1/store/x", 200)

    console.open(f"/admin/routing/route/{route.pk}/history/")
    newest = page.locator("tr.history-row").first
    assert newest.locator("button.restore").count() == 0  # the current version
    newest.locator("input[name=reason]").fill("store URL not announced yet")
    newest.locator("button.undo").click()
    page.wait_for_load_state()
    assert "Undone" in page.locator("ul.messagelist").inner_text()
    reason = page.locator("tr.history-row").first.inner_text()
    assert "undo of change set" in reason and "by admin: store URL not announced yet" in reason
    _wait_for(gateway.url, "/api/v1/shop/x", 200)
    assert _get(gateway.url, "/api/v1/store/x")[0] == 404

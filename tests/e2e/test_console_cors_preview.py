"""The route form's live CORS preview in a real headless Chromium against gunicorn.

Reuses the console browser tests' fixtures and helpers (tests/e2e/test_console_browser.py).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group

from audit.roles import VIEWER, ensure_console_groups
from routing.models import Route, Service
from tests.e2e.test_console_browser import (  # noqa: F401 - fixtures used by name
    ADMIN_PW,
    CHROMIUM,
    VIEWER_PW,
    Console,
    PageWatch,
    _user,
    browser,
    chromium,
)
from tests.support.gateway_server import ROOT, GatewayServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no Chromium at /usr/bin/chromium: install it with "
        "`apt-get install -y chromium` to run the console browser tests",
    ),
]

APP = "https://app.example.com"
SCRIPT = "management/cors_preview.js"
WAIT_MS = 10_000


@pytest.fixture(scope="module")
def static_with_preview() -> None:
    """Collected static files that include the preview's script (an older collection may not)."""
    manifest = ROOT / "var" / "static" / "staticfiles.json"
    if manifest.exists() and SCRIPT in json.loads(manifest.read_text())["paths"]:
        return
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "gateway_project.settings"},
        check=True,
        timeout=180,
    )


@pytest.fixture
def server(static_with_preview: None) -> Iterator[GatewayServer]:
    """One gunicorn gateway sharing the test database."""
    with GatewayServer() as running:
        yield running


def _preflight(base_url: str, path: str, origin: str) -> tuple[int, dict[str, str]]:
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(
            "OPTIONS",
            path,
            headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
        )
        response = connection.getresponse()
        response.read()
        headers = {
            name: value
            for name, value in response.getheaders()
            if name.lower().startswith("access-control-") or name.lower() == "vary"
        }
        return response.status, headers
    finally:
        connection.close()


def _shown(page: Any) -> list[str]:
    return sorted(page.locator("#cors-preview-headers-out li").all_inner_texts())


def _settled(page: Any, text: str) -> str:
    """The preview's status line once it holds `text` and no request is pending."""
    page.wait_for_function(
        "([text]) => { const p = document.getElementById('cors-preview');"
        " return !p.dataset.pending &&"
        " document.getElementById('cors-preview-status').textContent.includes(text); }",
        arg=[text],
        timeout=WAIT_MS,
    )
    return str(page.locator("#cors-preview-status").inner_text())


def test_typing_an_origin_and_editing_cors_fields_updates_the_preview(browser, server, upstream):  # noqa: F811
    ensure_console_groups()
    _user("admin", ADMIN_PW, superuser=True)
    _user("vera", VIEWER_PW).groups.add(Group.objects.get(name=VIEWER))
    shop = Service.objects.create(name="shop", url=upstream.url)
    route = Route.objects.create(
        path="/shop/**",
        service=shop,
        methods="GET,POST",
        cors={"origins": [APP], "headers": ["Authorization"], "max_age_ms": 600_000},
    )
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(WAIT_MS)
    console = Console(page, server.url)
    console.login("admin", ADMIN_PW)
    watch = PageWatch(page, server.url)

    status, problems = watch.visit(page, f"/admin/routing/route/{route.pk}/change/")
    assert status == 200 and problems == []
    # The panel sits in the CORS fieldset; the origin defaults to the first configured one.
    assert page.locator("fieldset.gw-cors #cors-preview").count() == 1
    assert page.input_value("#cors-preview-origin") == APP
    assert _settled(page, "204") == "204 No Content"
    shown = _shown(page)
    # What the page shows is what the proxy answers (gunicorn, the saved route).
    deadline = time.monotonic() + 5
    while True:
        got, proxied = _preflight(server.url, "/shop/items", APP)
        if got == 204 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert got == 204
    assert shown == sorted(f"{name}: {value}" for name, value in proxied.items())
    assert f"Access-Control-Allow-Origin: {APP}" in shown

    # Another origin, typed: not allowed, no CORS headers.
    page.fill("#cors-preview-origin", "https://evil.example")
    assert "no CORS headers" in _settled(page, "no CORS headers")
    assert _shown(page) == []

    # The admin allows it in the (unsaved) form and asks for credentials: the preview follows.
    page.fill("#id_cors_origins", f"{APP}\nhttps://evil.example")
    page.check("#id_cors_credentials")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#cors-preview-headers-out li')]"
        ".some(li => li.textContent.includes('Access-Control-Allow-Credentials: true'))",
        timeout=WAIT_MS,
    )
    _settled(page, "204")
    assert "Access-Control-Allow-Origin: https://evil.example" in _shown(page)

    # Bad input is a clear message, not a failure.
    page.fill("#cors-preview-origin", "https://evil.example/path")
    page.wait_for_function(
        "() => document.getElementById('cors-preview-notes').textContent"
        ".includes('Not an origin a browser sends')",
        timeout=WAIT_MS,
    )
    assert page.locator("#cors-preview-status").inner_text() == "Cannot preview:"
    page.fill("#id_cors_max_age", "2 days")
    page.fill("#cors-preview-origin", APP)
    page.wait_for_function(
        "() => document.getElementById('cors-preview-notes').textContent.includes('cors.max_age')",
        timeout=WAIT_MS,
    )
    assert watch.problems == []  # no console error, no failed request, nothing off-site
    saved = Route.objects.get().cors
    assert saved is not None and saved["origins"] == [APP]  # the preview saved nothing

    # A viewer's read-only page previews the saved config.
    viewer_page = browser.new_page(viewport={"width": 1280, "height": 1000})
    viewer_page.set_default_timeout(WAIT_MS)
    Console(viewer_page, server.url).login("vera", VIEWER_PW)
    viewer_watch = PageWatch(viewer_page, server.url)
    status, problems = viewer_watch.visit(viewer_page, f"/admin/routing/route/{route.pk}/change/")
    assert status == 200 and problems == []
    assert viewer_page.locator("input[name=_save]").count() == 0
    assert _settled(viewer_page, "204") == "204 No Content"
    assert f"Access-Control-Allow-Origin: {APP}" in _shown(viewer_page)
    assert viewer_watch.problems == []

"""Route policies as a developer sees them in the rendered Swagger UI and ReDoc (headless Chromium).

Reuses the console browser tests' fixtures and helpers (tests/e2e/test_console_browser.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from routing.models import Route, Service
from tests.e2e.test_console_browser import (  # noqa: F401 - fixtures used by name
    CHROMIUM,
    PageWatch,
    browser,
    chromium,
    collected_static,
)
from tests.support.gateway_server import GatewayServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no Chromium at /usr/bin/chromium: install it with "
        "`apt-get install -y chromium` to run the console browser tests",
    ),
]

WAIT_MS = 30_000  # ReDoc's bundle is large; a loaded two-core machine parses it slowly


@pytest.fixture
def server(collected_static: None) -> Iterator[GatewayServer]:  # noqa: F811
    """One gunicorn gateway sharing the test database."""
    with GatewayServer() as running:
        yield running


def test_swagger_and_redoc_show_validation_and_cors_but_never_networks(browser, server, upstream):  # noqa: F811
    shop = Service.objects.create(name="shop", url=upstream.url, openapi="/openapi.json")
    Route.objects.create(
        path="/shop/**",
        service=shop,
        strip_prefix=True,
        authentication="none",
        validate_requests=True,
        cors={"origins": ["https://app.example.com"], "credentials": True},
        ip_allow=["10.99.0.0/16"],
    )
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(WAIT_MS)
    watch = PageWatch(page, server.url)

    status, problems = watch.visit(page, "/api/docs?service=shop", idle=True)
    assert status == 200 and problems == []
    page.get_by_text("Route policies a caller should know").wait_for(timeout=WAIT_MS)
    info = page.locator(".information-container").inner_text()
    assert "Requests are validated against the service's OpenAPI schema" in info
    assert "Browsers may call it from https://app.example.com" in info
    assert "with credentials" in info and "Restricted to some networks" in info
    assert "GET /shop/tasks" in info  # the validated operations

    status, problems = watch.visit(page, "/api/redoc?service=shop", idle=True)
    assert status == 200 and problems == []
    page.get_by_text("validated against this operation's schema").first.wait_for(timeout=WAIT_MS)
    text = page.locator("body").inner_text()
    assert "Browsers may call it from https://app.example.com" in text
    assert "10.99" not in text
    assert watch.problems == []

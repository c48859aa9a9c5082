"""A page on another origin calls CORS routes with fetch in headless Chromium."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from tests.policies.conftest import (
    ALLOWED_ORIGIN,
    import_config,
    policy_config,
    remove_config,
    running_gateway,
)
from tests.support.gateway_server import GatewayServer

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium"),
]

PAGE = b"<!doctype html><title>another origin</title><p>app</p>"


class _PageHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)


@pytest.fixture
def other_origin() -> Iterator[str]:
    """A page server on its own port: another origin than the gateway's."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def gateway(django_db_setup, django_db_blocker, policy_servers) -> Iterator[GatewayServer]:
    """The policy config, committed (module scope: outside any test's transaction), served."""
    with django_db_blocker.unblock():
        import_config(policy_config(policy_servers))
        try:
            with running_gateway() as server:
                yield server
        finally:
            remove_config()


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            yield chromium.new_page()
        finally:
            chromium.close()
            connections.close_all()


FETCH = """async (url) => {
  try {
    const response = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                       body: JSON.stringify({from: "browser"})});
    return {ok: true, status: response.status, body: await response.text()};
  } catch (error) {
    return {ok: false, error: String(error)};
  }
}"""


def test_page_on_another_origin_calls_a_cors_route(gateway, other_origin, page, servers):
    page.goto(other_origin + "/")
    result = page.evaluate(FETCH, f"{gateway.url}/open-cors/from-browser")
    assert result["ok"], result
    assert result["status"] == 200
    assert '"path": "/open-cors/from-browser"' in result["body"]
    assert servers.count("/open-cors/from-browser") == 1  # the preflight was not forwarded


def test_browser_refuses_a_route_that_does_not_allow_the_origin(
    gateway, other_origin, page, servers
):
    page.goto(other_origin + "/")
    # The route is there and answers its own origin: the refusal below is about the origin.
    preflight = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=15)
    preflight.request(
        "OPTIONS",
        "/cors/items",
        headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.getresponse().headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    preflight.close()
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    result = page.evaluate(FETCH, f"{gateway.url}/cors/items")
    assert not result["ok"], result  # the preflight named no origin: fetch fails
    assert any("Access-Control-Allow-Origin" in message for message in messages), messages
    assert servers.count() == 0

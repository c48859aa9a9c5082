"""OAuth 2.0 authorization code + PKCE in a real headless Chromium, to a callback on another origin.

The gateway is real gunicorn; the client application's callback is a small HTTP server on
another loopback port (another origin), so the browser must follow the consent form's redirect
across origins, which the consent page's CSP `form-action` has to allow.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from oauth2_provider.models import get_application_model

from accounts.models import User
from tests.e2e import test_console_browser as console_browser
from tests.support.gateway_server import GatewayServer

CHROMIUM = console_browser.CHROMIUM
# The console browser test's fixtures: Playwright's Chromium (one for this module) and the
# collected static files.
browser = console_browser.browser
chromium = console_browser.chromium
collected_static = console_browser.collected_static
PASSWORD = "oauth-browser-pw-1"  # a throw-away user of a test database

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium"),
]


class Callback:
    """The client application's redirect endpoint: records each query it receives."""

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        received = self.queries

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                target = urllib.parse.urlsplit(self.path)
                if target.path == "/callback":  # not the browser's /favicon.ico
                    received.append(dict(urllib.parse.parse_qsl(target.query)))
                body = b"<!DOCTYPE html><title>Example app</title><p id=done>back in the app</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/callback"

    def __enter__(self) -> Callback:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def callback() -> Iterator[Callback]:
    with Callback() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(django_db_setup: None, collected_static: None) -> Iterator[GatewayServer]:
    """One gunicorn for the module: each test brings its own user, application, callback and
    browser context, and the database is emptied between tests."""
    with GatewayServer(OAUTH_REDIRECT_URI_SCHEMES="http,https") as server:
        yield server


@pytest.fixture
def app(callback: Callback) -> Any:
    """A public client (PKCE, no secret) registered with the callback as its redirect URI."""
    hasher = PBKDF2PasswordHasher()  # the server's hasher (few rounds), not the tests' fast one
    password = hasher.encode(PASSWORD, hasher.salt(), iterations=1000)
    User.objects.create(username="erin", password=password)
    application_model: Any = get_application_model()
    return application_model.objects.create(
        name="Example app",
        client_type="public",
        authorization_grant_type="authorization-code",
        redirect_uris=callback.url,
        algorithm="",
    )


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def _authorize_url(gateway: GatewayServer, app: Any, callback: Callback, challenge: str) -> str:
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": callback.url,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "st-42",
        }
    )
    return f"{gateway.url}/o/authorize/?{query}"


def _sign_in_and_reach_consent(page: Any, url: str) -> Any:
    page.goto(url)
    assert page.title() == "Sign in | API gateway"
    assert "Gateway console" not in page.content()
    page.fill("#id_username", "erin")
    page.fill("#id_password", PASSWORD)
    with page.expect_response(lambda r: "/o/authorize/" in r.url and r.request.method == "GET"):
        page.click("input[type=submit]")
    page.wait_for_selector("#authorizationForm")
    assert page.title() == "Authorize Example app | API gateway"
    return page


def _post_form(url: str, fields: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode())
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_authorization_code_with_pkce_completes_in_a_browser_to_another_origin(
    browser, gateway, callback, app
):
    verifier, challenge = _pkce()
    page = browser.new_page()
    page.set_default_timeout(15_000)
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text))
    _sign_in_and_reach_consent(page, _authorize_url(gateway, app, callback, challenge))

    with page.expect_navigation(url=f"{callback.url}?*"):
        page.click("input[name=allow]")
    page.wait_for_selector("#done")
    returned = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page.url).query))
    assert "code" in returned, returned
    assert returned["state"] == "st-42"
    assert callback.queries[-1]["code"] == returned["code"]
    assert not [text for text in blocked if "Content Security Policy" in text], blocked

    status, tokens = _post_form(
        f"{gateway.url}/o/token/",
        {
            "grant_type": "authorization_code",
            "code": returned["code"],
            "redirect_uri": callback.url,
            "client_id": app.client_id,
            "code_verifier": verifier,
        },
    )
    assert status == 200, tokens
    assert tokens["token_type"] == "Bearer"
    me = urllib.request.Request(
        f"{gateway.url}/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    with urllib.request.urlopen(me, timeout=15) as answer:
        assert json.loads(answer.read())["username"] == "erin"

    # The code is single-use, and useless without the verifier.
    again, error = _post_form(
        f"{gateway.url}/o/token/",
        {
            "grant_type": "authorization_code",
            "code": returned["code"],
            "redirect_uri": callback.url,
            "client_id": app.client_id,
            "code_verifier": verifier,
        },
    )
    assert again == 400 and error["error"] == "invalid_grant"

    # The consent page allowed its form to complete to the registered origin, and only that.
    response = page.request.get(_authorize_url(gateway, app, callback, challenge))
    policy = response.headers["content-security-policy"]
    callback_origin = callback.url.removesuffix("/callback")
    assert f"form-action 'self' {callback_origin};" in policy


def test_cancel_reaches_the_callback_with_access_denied(browser, gateway, callback, app):
    _, challenge = _pkce()
    page = browser.new_page()
    page.set_default_timeout(15_000)
    _sign_in_and_reach_consent(page, _authorize_url(gateway, app, callback, challenge))

    with page.expect_navigation(url=f"{callback.url}?*"):
        page.click("input[value=Cancel]")
    page.wait_for_selector("#done")

    assert callback.queries[-1]["error"] == "access_denied"
    assert callback.queries[-1]["state"] == "st-42"
    assert "code" not in callback.queries[-1]


def test_other_gateway_pages_keep_form_action_self_only(browser, gateway, callback, app):
    page = browser.new_page()
    response = page.goto(f"{gateway.url}/o/login/")
    assert response is not None
    policy = response.headers["content-security-policy"]

    assert "form-action 'self';" in policy
    assert "127.0.0.1" not in policy


def test_unregistered_redirect_uri_gets_no_form_action_exception(browser, gateway, callback, app):
    _, challenge = _pkce()
    page = browser.new_page()
    page.set_default_timeout(15_000)
    _sign_in_and_reach_consent(page, _authorize_url(gateway, app, callback, challenge))
    evil = _authorize_url(gateway, app, callback, challenge).replace(
        urllib.parse.quote(callback.url, safe=""),
        urllib.parse.quote("https://evil.example/callback", safe=""),
    )

    response = page.request.get(evil)

    assert "evil.example" not in response.headers.get("content-security-policy", "")
    assert "form-action 'self';" in response.headers.get("content-security-policy", "")

"""Credentials never reach the logs, even with request tracing and DEBUG logging on."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from accounts.models import ApiClient, User
from accounts.services import api_key_create
from routing.models import Route, Service
from tests.support.gateway_server import GatewayServer

# Transactional: the server writes (token bookkeeping, lockouts), which an open test
# transaction would block on SQLite.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "plaintext-password-never-logged-7"
SIGNING_KEY = "hmac-signing-key-never-logged-0123456789abcdef"


def _call(
    server: GatewayServer, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, body=body or None, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


@pytest.fixture(scope="module")
def credentials(django_db_setup, django_db_blocker, upstream_server) -> Iterator[dict[str, str]]:
    """A user, an API key and a protected route; yields the secret values by name."""
    with django_db_blocker.unblock():
        user = User.objects.create(
            username="logged",
            password=PBKDF2PasswordHasher().encode(PASSWORD, "salt1234", iterations=1000),
        )
        client = ApiClient.objects.create(name="log-client")
        _, key = api_key_create(client=client, name="k")
        service = Service.objects.create(name="logsvc", url=upstream_server.url)
        Route.objects.create(path="/private/**", service=service)
        try:
            yield {"password": PASSWORD, "api_key": key, "signing_key": SIGNING_KEY}
        finally:
            Route.objects.filter(service=service).delete()
            service.delete()
            client.delete()
            user.delete()


def test_tokens_keys_and_passwords_never_appear_in_any_log_line(credentials, upstream):
    secrets_seen: dict[str, str] = dict(credentials)
    server = GatewayServer(TRACE_REQUESTS="true", LOG_LEVEL="DEBUG", JWT_SIGNING_KEY=SIGNING_KEY)
    with server:
        status, body = _call(
            server,
            "POST",
            "/auth/token/",
            {"Content-Type": "application/json"},
            json.dumps({"username": "logged", "password": PASSWORD}).encode(),
        )
        assert status == 200, body
        tokens = json.loads(body)
        secrets_seen.update(access=tokens["access"], refresh=tokens["refresh"])
        bearer = {"Authorization": f"Bearer {tokens['access']}"}
        assert _call(server, "GET", "/private/echo", bearer)[0] == 200
        assert (
            _call(server, "GET", "/private/echo", {"X-API-Key": credentials["api_key"]})[0] == 200
        )
        # Refused credentials are logged as refusals, never by value.
        wrong_key = credentials["api_key"][:-6] + "XXXXXX"
        secrets_seen["wrong_key"] = wrong_key
        assert _call(server, "GET", "/private/echo", {"X-API-Key": wrong_key})[0] == 401
        forged = tokens["access"][:-6] + "AAAAAA"
        secrets_seen["forged"] = forged
        assert (
            _call(server, "GET", "/private/echo", {"Authorization": f"Bearer {forged}"})[0] == 401
        )
        wrong_login = json.dumps({"username": "logged", "password": PASSWORD + "x"}).encode()
        _call(server, "POST", "/auth/token/", {"Content-Type": "application/json"}, wrong_login)
    log = server.log_path.read_text(errors="replace")
    # Tracing did log those requests and their headers, redacted.
    assert '"authorization":"[REDACTED]"' in log
    assert '"x-api-key":"[REDACTED]"' in log
    leaked = {name for name, value in secrets_seen.items() if value in log}
    # The JWT's signature part alone must not leak either (a token split across fields).
    leaked |= {name for name in ("access", "forged") if secrets_seen[name].rsplit(".", 1)[1] in log}
    assert not leaked, f"leaked into the log: {sorted(leaked)}"

"""The admin plane against a real gunicorn: the operator-to-administrator escalation is refused,
a superuser's JWT manages the gateway, an operator's JWT is held to its console role, and the
admin plane's own errors keep their formats (401 challenge, RFC 6749 JSON, console pages)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Group

from accounts.models import Permission, Role, User
from audit.roles import OPERATOR, VIEWER, ensure_console_groups
from tests.security.wire import problem_of, status_of
from tests.support.gateway_server import GatewayServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT_PASSWORD = "root passphrase never guessed 7"
PASSWORD = "operator passphrase 12345"
ESCALATION = "roles:\n- name: opx-role\n  permissions: [manage:gateway]\n"


@dataclass(frozen=True)
class Answer:
    """Status, headers and body of one exchange."""

    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def call(
    server: GatewayServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> Answer:
    """One request to the gateway; any status is an answer, not an exception."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(f"{server.url}{path}", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())


@pytest.fixture(scope="module")
def gateway(django_db_setup) -> Iterator[GatewayServer]:
    """One gunicorn gateway on the test database for the module."""
    with GatewayServer() as server:
        yield server


@pytest.fixture
def people() -> dict[str, User]:
    """A superuser, an operator holding a gateway role, and a viewer (per test)."""
    ensure_console_groups()
    hasher = PBKDF2PasswordHasher()  # the server's production hasher, not the tests' MD5
    root = User.objects.create(
        username="root",
        password=hasher.encode(ROOT_PASSWORD, "rootsalt", iterations=1000),
        is_staff=True,
        is_superuser=True,
    )
    operator = User.objects.create(
        username="opx", password=hasher.encode(PASSWORD, "opxsalt", iterations=1000), is_staff=True
    )
    operator.groups.add(Group.objects.get(name=OPERATOR))
    operator.roles.add(Role.objects.create(name="opx-role"))
    viewer = User.objects.create(
        username="viewx", password=hasher.encode(PASSWORD, "vwsalt", iterations=1000), is_staff=True
    )
    viewer.groups.add(Group.objects.get(name=VIEWER))
    return {"root": root, "operator": operator, "viewer": viewer}


def jwt_of(server: GatewayServer, username: str, password: str) -> str:
    """An access token from the gateway's own /auth/token/."""
    answer = call(server, "POST", "/auth/token/", {"username": username, "password": password})
    assert answer.status == 200, answer.body
    return str(answer.json()["access"])


def test_the_operator_escalation_is_refused_and_the_superusers_password_unchanged(gateway, people):
    token = jwt_of(gateway, "opx", PASSWORD)
    imported = call(
        gateway, "POST", "/api/gateway/config/import/", {"text": ESCALATION}, token=token
    )
    assert imported.status == 403, imported.body
    assert imported.headers["Content-Type"] == "application/problem+json"
    assert "roles" in imported.json()["detail"]
    assert not Role.objects.filter(name="opx-role", permissions__name="manage:gateway").exists()

    # Even holding manage:gateway (say it was granted by mistake), the console role decides.
    role = Role.objects.get(name="opx-role")
    role.permissions.add(Permission.objects.get_or_create(name="manage:gateway")[0])
    root = people["root"]
    before = root.password
    takeover = call(
        gateway,
        "PATCH",
        f"/api/gateway/users/{root.pk}/",
        {"password": "the operator owns this now 1"},
        token=jwt_of(gateway, "opx", PASSWORD),
    )
    assert takeover.status == 403, takeover.body
    root.refresh_from_db()
    assert root.password == before
    assert jwt_of(gateway, "root", ROOT_PASSWORD)  # the superuser still signs in


def test_a_superusers_jwt_manages_and_an_operators_jwt_is_held_to_its_console_role(gateway, people):
    root = jwt_of(gateway, "root", ROOT_PASSWORD)
    listed = call(gateway, "GET", "/api/gateway/services/", token=root)
    assert listed.status == 200, listed.body
    assert "results" in listed.json()
    created = call(gateway, "POST", "/api/gateway/roles/", {"name": "by-root"}, token=root)
    assert created.status == 201, created.body

    operator = jwt_of(gateway, "opx", PASSWORD)
    assert call(gateway, "GET", "/api/gateway/roles/", token=operator).status == 200
    service = {"name": "opx-svc", "url": "http://127.0.0.1:9"}
    assert call(gateway, "POST", "/api/gateway/services/", service, token=operator).status == 201
    for path, body in (
        ("/api/gateway/roles/", {"name": "by-opx"}),
        ("/api/gateway/permissions/", {"name": "by:opx"}),
        ("/api/gateway/users/", {"username": "by-opx"}),
        ("/api/gateway/clients/", {"name": "by-opx"}),
    ):
        refused = call(gateway, "POST", path, body, token=operator)
        assert refused.status == 403, (path, refused.body)
        assert "gateway-operator" in refused.json()["detail"]

    viewer = jwt_of(gateway, "viewx", PASSWORD)
    assert call(gateway, "GET", "/api/gateway/services/", token=viewer).status == 200
    refused = call(gateway, "POST", "/api/gateway/services/", {"name": "v"}, token=viewer)
    assert refused.status == 403 and "gateway-viewer" in refused.json()["detail"]


def test_a_console_role_change_reaches_the_tokens_level_at_once(gateway, people, settings):
    if not settings.REDIS_URL:
        # The change is made in this process; the gateway's cached level is in its own memory.
        pytest.skip("a change made in another process reaches the gateway's cache through Redis")
    operator = people["operator"]
    token = jwt_of(gateway, "opx", PASSWORD)
    service = {"name": "opx-svc2", "url": "http://127.0.0.1:9"}
    assert call(gateway, "GET", "/api/gateway/services/", token=token).status == 200
    operator.groups.clear()  # demoted: the cached level must go with it
    operator.groups.add(Group.objects.get(name=VIEWER))
    assert call(gateway, "POST", "/api/gateway/services/", service, token=token).status == 403


def test_anonymous_management_calls_are_401_with_a_bearer_challenge(gateway):
    answer = call(gateway, "GET", "/api/gateway/services/")
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert answer.json()["code"] == "not_authenticated"


def test_nul_and_oversize_bodies_are_400_and_413_problems(gateway, people):
    root = jwt_of(gateway, "root", ROOT_PASSWORD)
    nul = call(
        gateway, "POST", "/api/gateway/clients/", {"name": "c", "owner": "a\x00b"}, token=root
    )
    assert nul.status == 400, nul.body
    assert [e["field"] for e in nul.json()["errors"]] == ["owner"]
    big = b'{"name": "' + b"x" * (6 * 1024 * 1024) + b'"}'
    answer = send_tolerating_early_answer(
        gateway.port,
        (
            "POST /api/gateway/roles/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Authorization: Bearer {root}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(big)}\r\n\r\n"
        ).encode(),
        big,
    )
    assert status_of(answer) == 413, answer[:300]
    assert "GATEWAY_MAX_API_BODY_SIZE" in problem_of(answer)["detail"]


def send_tolerating_early_answer(port: int, head: bytes, body: bytes) -> bytes:
    """Send a request whose body the server may refuse (and stop reading) half way."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        try:
            for start in range(0, len(body), 65536):
                sock.sendall(body[start : start + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the answer came before the whole body: read it
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def test_oauth_and_console_errors_have_their_own_formats(gateway):
    introspect = call(
        gateway,
        "POST",
        "/o/introspect/",
        raw=b"token=x",
        content_type="application/x-www-form-urlencoded",
    )
    assert introspect.status == 401
    assert introspect.headers["Content-Type"].startswith("application/json")
    assert introspect.json()["error"] == "invalid_client"
    wrong_method = call(gateway, "GET", "/o/token/")
    assert wrong_method.status == 405 and wrong_method.json()["error"] == "invalid_request"
    logout = call(gateway, "GET", "/admin/logout/")
    assert logout.status == 200
    assert b"<form" in logout.body and b"Log out" in logout.body

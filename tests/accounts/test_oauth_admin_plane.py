"""OAuth 2.0 on the admin plane: who may introspect, what a narrowed token carries, error format."""

from __future__ import annotations

import json
from typing import Any

import pytest

from accounts.selectors import principal_for_oauth_token
from accounts.services import oauth_application_create
from audit.authority import MANAGER, NONE, actor_for_principal
from tests.routing.test_authorization_oauth import basic, client_credentials_token, form_post
from tests.support.identity import api_client, role

pytestmark = pytest.mark.django_db


def _application(name: str, *roles: Any) -> tuple[Any, str]:
    app, secret = oauth_application_create(
        name=name,
        client_type="confidential",
        authorization_grant_type="client-credentials",
        client=api_client(name, *roles),
    )
    assert secret is not None  # a confidential application always gets one
    return app, secret


def test_an_unlisted_client_cannot_obtain_the_introspection_scope(client):
    app, secret = _application("snooper", role("reader", "read:tasks"))
    response = form_post(
        client,
        "/o/token/",
        {"grant_type": "client_credentials", "scope": "introspection"},
        **basic(app.client_id, secret),
    )
    assert response.status_code in (400, 401)
    assert json.loads(response.content)["error"] == "invalid_scope"


def test_an_unlisted_client_cannot_introspect_another_clients_token(client):
    victim, victim_secret = _application("victim", role("reader", "read:tasks"))
    token = client_credentials_token(client, victim, victim_secret)["access_token"]
    snooper, secret = _application("snooper")
    response = form_post(
        client, "/o/introspect/", {"token": token}, **basic(snooper.client_id, secret)
    )
    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/json")
    assert json.loads(response.content)["error"] == "unauthorized_client"


def test_a_listed_client_introspects_by_basic_auth_and_by_its_scoped_token(client, settings):
    victim, victim_secret = _application("victim", role("reader", "read:tasks"))
    token = client_credentials_token(client, victim, victim_secret)["access_token"]
    resource, secret = _application("resource-server")
    settings.GATEWAY_OAUTH_INTROSPECTION_CLIENTS = [resource.client_id]
    by_basic = form_post(
        client, "/o/introspect/", {"token": token}, **basic(resource.client_id, secret)
    )
    assert by_basic.status_code == 200 and json.loads(by_basic.content)["active"] is True
    own = client_credentials_token(client, resource, secret, scope="introspection")["access_token"]
    by_token = client.post("/o/introspect/", {"token": token}, HTTP_AUTHORIZATION=f"Bearer {own}")
    assert by_token.status_code == 200, by_token.content
    assert json.loads(by_token.content)["active"] is True


def test_introspection_without_credentials_is_a_401_in_rfc6749_json(client):
    response = form_post(client, "/o/introspect/", {"token": "x"})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert json.loads(response.content)["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/o/token/"),
        ("get", "/o/revoke_token/"),
        ("put", "/o/introspect/"),
        ("get", "/o/nope/"),
    ],
)
def test_oauth_refusals_are_rfc6749_json_never_empty(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code in (404, 405)
    assert response["Content-Type"].startswith("application/json")
    assert json.loads(response.content)["error"] == "invalid_request"


def test_a_scope_narrowed_token_keeps_only_the_roles_its_scope_fully_grants(client):
    app, secret = _application(
        "narrow",
        role("reader", "read:tasks"),
        role("writer", "read:tasks", "write:tasks"),
        role("tagged"),
    )
    full = principal_for_oauth_token(
        raw_token=client_credentials_token(client, app, secret)["access_token"]
    )
    assert full.roles == {"reader", "writer", "tagged"}
    token = client_credentials_token(client, app, secret, scope="read:tasks")["access_token"]
    narrowed = principal_for_oauth_token(raw_token=token)
    assert narrowed.permissions == {"read:tasks"}
    assert narrowed.roles == {"reader"}


def test_a_narrowed_token_manages_the_gateway_only_with_manage_gateway_in_its_scope(client):
    app, secret = _application("ops-bot", role("ops", "manage:gateway", "read:tasks"))
    narrowed = client_credentials_token(client, app, secret, scope="read:tasks")["access_token"]
    assert actor_for_principal(principal_for_oauth_token(raw_token=narrowed)).level == NONE
    full = client_credentials_token(client, app, secret)["access_token"]
    assert actor_for_principal(principal_for_oauth_token(raw_token=full)).level == MANAGER
    listed = client.get("/api/gateway/services/", HTTP_AUTHORIZATION=f"Bearer {full}")
    assert listed.status_code == 200
    refused = client.get("/api/gateway/services/", HTTP_AUTHORIZATION=f"Bearer {narrowed}")
    assert refused.status_code == 403

"""OAuth2 tokens from /o/ on the proxy: client credentials, authorization code + PKCE, refresh."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from accounts.services import oauth_application_create
from tests.support.identity import (
    PASSWORD,
    api_client,
    bearer,
    problem,
    protect,
    role,
    upstream_headers,
    user,
)

pytestmark = pytest.mark.django_db

REDIRECT = "https://app.example/callback"


def form_post(client, path: str, data: dict[str, str], **extra):
    return client.post(
        path, urlencode(data), content_type="application/x-www-form-urlencoded", **extra
    )


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {raw}"}


@pytest.fixture
def oauth_route(make_route, upstream):
    """/svc/** needs read:tasks."""
    return protect(make_route("/svc/**", upstream.url), permissions=("read:tasks",))


@pytest.fixture
def machine():
    """A confidential client-credentials application acting as API client `reporting`."""
    reporting = api_client("reporting", role("reader", "read:tasks", "read:reports"))
    app, secret = oauth_application_create(
        name="Reporting job",
        client_type="confidential",
        authorization_grant_type="client-credentials",
        client=reporting,
    )
    return app, secret


def client_credentials_token(client, app, secret, scope: str | None = None) -> dict:
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    response = form_post(client, "/o/token/", data, **basic(app.client_id, secret))
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def test_client_credentials_token_is_accepted_with_the_clients_roles(
    gateway, client, oauth_route, machine
):
    app, secret = machine
    token = client_credentials_token(client, app, secret)["access_token"]

    headers = upstream_headers(gateway.get("/svc/echo", **bearer(token)))

    assert headers["x-consumer-id"] == "reporting"
    assert headers["x-consumer-roles"] == "reader"
    assert headers["x-consumer-permissions"] == "read:reports,read:tasks"


def test_scope_narrows_a_token_to_some_of_its_permissions(
    gateway, client, make_route, upstream, machine
):
    protect(make_route("/svc/**", upstream.url), permissions=("read:reports",))
    app, secret = machine
    token = client_credentials_token(client, app, secret, scope="read:tasks")["access_token"]

    response = gateway.get("/svc/echo", **bearer(token))

    assert response.status_code == 403
    assert problem(response)["code"] == "permission_denied"


def test_revoked_oauth_token_is_refused_on_the_next_request(
    gateway, client, oauth_route, machine, upstream
):
    app, secret = machine
    token = client_credentials_token(client, app, secret)["access_token"]
    assert gateway.get("/svc/echo", **bearer(token)).status_code == 200

    revoked = form_post(
        client, "/o/revoke_token/", {"token": token}, **basic(app.client_id, secret)
    )
    assert revoked.status_code == 200, revoked.content
    response = gateway.get("/svc/echo", **bearer(token))

    assert response.status_code == 401
    assert problem(response)["code"] == "authentication_failed"
    assert upstream.count() == 1


def test_unknown_opaque_token_is_refused_with_401(gateway, oauth_route):
    response = gateway.get("/svc/echo", **bearer("k" * 30))

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_introspection_reports_a_live_token(client, machine, settings):
    app, secret = machine
    settings.GATEWAY_OAUTH_INTROSPECTION_CLIENTS = [app.client_id]
    token = client_credentials_token(client, app, secret)["access_token"]

    response = form_post(client, "/o/introspect/", {"token": token}, **basic(app.client_id, secret))

    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    assert body["active"] is True
    assert body["client_id"] == app.client_id


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


@pytest.fixture
def web_app():
    """A public authorization-code application (PKCE required)."""
    app, _ = oauth_application_create(
        name="Task board",
        client_type="public",
        authorization_grant_type="authorization-code",
        redirect_uris=REDIRECT,
    )
    return app


def authorization_code_tokens(client, app, person) -> dict:
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT,
        "scope": "gateway",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "xyz",
    }
    sent_to_login = client.get("/o/authorize/", params)
    assert sent_to_login.status_code == 302
    assert sent_to_login["Location"].startswith("/o/login/?next=")
    login_page = client.get(sent_to_login["Location"])
    assert login_page.status_code == 200
    logged_in = client.post(
        sent_to_login["Location"], {"username": person.username, "password": PASSWORD}
    )
    assert logged_in.status_code == 302, logged_in.content
    page = client.get(logged_in["Location"])
    assert page.status_code == 200, page.content
    approved = client.post("/o/authorize/", {**params, "allow": "Authorize"})
    assert approved.status_code == 302, approved.content
    query = parse_qs(urlsplit(approved["Location"]).query)
    assert query["state"] == ["xyz"]
    client.logout()
    response = form_post(
        client,
        "/o/token/",
        {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": REDIRECT,
            "client_id": app.client_id,
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def test_authorization_code_with_pkce_gives_a_token_with_the_users_roles(
    gateway, client, oauth_route, web_app
):
    dana = user("dana", role("developer", "read:tasks"))
    tokens = authorization_code_tokens(client, web_app, dana)

    headers = upstream_headers(gateway.get("/svc/echo", **bearer(tokens["access_token"])))

    assert headers["x-consumer-id"] == str(dana.pk)
    assert headers["x-consumer-username"] == "dana"
    assert headers["x-consumer-roles"] == "developer"


def test_authorization_code_without_pkce_is_refused(client, web_app):
    dana = user("dana", role("developer", "read:tasks"))
    client.force_login(dana)

    response = client.get(
        "/o/authorize/",
        {"response_type": "code", "client_id": web_app.client_id, "redirect_uri": REDIRECT},
    )

    # The error goes back to the client (RFC 6749 section 4.1.2.1), never a code.
    assert response.status_code == 302
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["error"] == ["invalid_request"]
    assert "code" not in query


def test_refresh_token_gives_a_working_new_access_token(gateway, client, oauth_route, web_app):
    dana = user("dana", role("developer", "read:tasks"))
    tokens = authorization_code_tokens(client, web_app, dana)

    response = form_post(
        client,
        "/o/token/",
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": web_app.client_id,
        },
    )

    assert response.status_code == 200, response.content
    fresh = json.loads(response.content)
    assert fresh["access_token"] != tokens["access_token"]
    assert gateway.get("/svc/echo", **bearer(fresh["access_token"])).status_code == 200


def test_deactivating_a_user_stops_their_oauth_tokens_at_once(
    gateway, client, oauth_route, web_app
):
    dana = user("dana", role("developer", "read:tasks"))
    tokens = authorization_code_tokens(client, web_app, dana)
    assert gateway.get("/svc/echo", **bearer(tokens["access_token"])).status_code == 200

    dana.is_active = False
    dana.save()

    assert gateway.get("/svc/echo", **bearer(tokens["access_token"])).status_code == 401
    refreshed = form_post(
        client,
        "/o/token/",
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": web_app.client_id,
        },
    )
    assert refreshed.status_code in (400, 401), refreshed.content

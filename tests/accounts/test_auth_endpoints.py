"""/auth/token/, /auth/token/refresh/, /auth/logout/ and /users/me."""

from __future__ import annotations

import json
import logging
import time

import jwt
import pytest
from django.conf import settings
from django.test import override_settings

from accounts.services import api_key_create, oauth_application_create
from tests.support.identity import (
    PASSWORD,
    api_client,
    api_key_header,
    bearer,
    problem,
    role,
    user,
)

pytestmark = pytest.mark.django_db


def post(client, path: str, data: dict, **extra):
    return client.post(path, data, content_type="application/json", **extra)


def login(client, username: str, password: str = PASSWORD, **extra):
    return post(client, "/auth/token/", {"username": username, "password": password}, **extra)


def decode(token: str) -> dict:
    return jwt.decode(token, str(settings.JWT_SIGNING_KEY), algorithms=["HS256"])


def test_token_pair_carries_the_designed_claims(client):
    alice = user(
        "alice", role("developer", "read:tasks", "write:tasks"), role("viewer", "read:tasks")
    )

    response = login(client, "alice")

    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    assert set(body) == {"access", "refresh"}
    access = decode(body["access"])
    assert access["sub"] == str(alice.pk)
    assert access["name"] == "alice"
    assert access["roles"] == ["developer", "viewer"]
    assert access["permissions"] == ["read:tasks", "write:tasks"]
    assert access["token_type"] == "access"
    assert {"iat", "exp", "jti"} <= set(access)
    assert access["exp"] - access["iat"] == settings.JWT_ACCESS_TOKEN_LIFETIME_MS // 1000
    assert decode(body["refresh"])["token_type"] == "refresh"
    assert jwt.get_unverified_header(body["access"])["kid"].startswith("gw-")


def test_wrong_password_is_refused_with_401_problem(client):
    user("alice")

    response = login(client, "alice", "wrong password")

    assert response.status_code == 401
    assert problem(response)["code"] == "authentication_failed"


def test_inactive_user_gets_no_token(client):
    user("alice", is_active=False)

    assert login(client, "alice").status_code == 401


def test_missing_fields_are_a_validation_problem(client):
    response = post(client, "/auth/token/", {"username": "alice"})

    assert response.status_code == 400
    assert problem(response)["errors"][0]["field"] == "password"


@override_settings(JWT_ISSUER="https://gw.example", JWT_AUDIENCE="tasks-api")
def test_issuer_and_audience_are_set_when_configured(client):
    user("alice")

    access = json.loads(login(client, "alice").content)["access"]

    claims = jwt.decode(
        access, str(settings.JWT_SIGNING_KEY), algorithms=["HS256"], audience="tasks-api"
    )
    assert claims["iss"] == "https://gw.example"


def test_refresh_rotates_and_the_old_refresh_token_stops_working(client):
    user("alice", role("developer", "read:tasks"))
    first = json.loads(login(client, "alice").content)

    response = post(client, "/auth/token/refresh/", {"refresh": first["refresh"]})

    assert response.status_code == 200, response.content
    second = json.loads(response.content)
    assert second["refresh"] != first["refresh"]
    assert decode(second["access"])["roles"] == ["developer"]
    reused = post(client, "/auth/token/refresh/", {"refresh": first["refresh"]})
    assert reused.status_code == 401
    assert problem(reused)["code"] == "authentication_failed"


def test_refresh_reads_the_users_current_roles(client):
    alice = user("alice", role("developer", "read:tasks"))
    tokens = json.loads(login(client, "alice").content)
    alice.roles.set([role("admin", "manage:integrations")])

    fresh = json.loads(post(client, "/auth/token/refresh/", {"refresh": tokens["refresh"]}).content)

    assert decode(fresh["access"])["permissions"] == ["manage:integrations"]


def test_access_token_cannot_be_used_to_refresh(client):
    user("alice")
    tokens = json.loads(login(client, "alice").content)

    response = post(client, "/auth/token/refresh/", {"refresh": tokens["access"]})

    assert response.status_code == 401


def test_logout_blacklists_the_refresh_token(client):
    user("alice")
    tokens = json.loads(login(client, "alice").content)

    assert post(client, "/auth/logout/", {"refresh": tokens["refresh"]}).status_code == 204

    assert post(client, "/auth/token/refresh/", {"refresh": tokens["refresh"]}).status_code == 401


def test_deactivated_user_cannot_refresh(client):
    alice = user("alice")
    tokens = json.loads(login(client, "alice").content)

    alice.is_active = False
    alice.save()

    assert post(client, "/auth/token/refresh/", {"refresh": tokens["refresh"]}).status_code == 401


@override_settings(JWT_ACCESS_TOKEN_LIFETIME_MS=60_000)
def test_access_token_lifetime_is_configurable(client):
    user("alice")

    access = decode(json.loads(login(client, "alice").content)["access"])

    assert access["exp"] - access["iat"] == 60
    assert abs(access["iat"] - time.time()) < 5


def test_brute_force_on_the_token_endpoint_gets_429_and_a_log_line(client, caplog):
    user("alice")
    limit = settings.AXES_FAILURE_LIMIT
    statuses = [login(client, "alice", f"guess-{n}").status_code for n in range(limit)]

    with caplog.at_level(logging.WARNING, logger="gateway.auth"):
        response = login(client, "alice", PASSWORD)

    assert statuses[: limit - 1] == [401] * (limit - 1)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert problem(response)["code"] == "too_many_login_attempts"
    assert any("locked out" in record.getMessage() for record in caplog.records)


def test_lockout_is_per_account_and_address(client):
    user("alice")
    user("bob")
    for n in range(settings.AXES_FAILURE_LIMIT):
        login(client, "alice", f"guess-{n}")

    assert login(client, "bob").status_code == 200
    assert login(client, "alice", REMOTE_ADDR="10.0.0.9").status_code == 200
    assert login(client, "alice").status_code == 429


def test_console_login_is_throttled_too(client):
    user("alice")
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "alice", "password": f"guess-{n}"})

    response = client.post("/admin/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 429
    assert "Retry-After" in response


def test_me_answers_for_a_jwt(client):
    alice = user("alice", role("developer", "read:tasks"))
    access = json.loads(login(client, "alice").content)["access"]

    body = json.loads(client.get("/users/me", **bearer(access)).content)

    assert body == {
        "id": str(alice.pk),
        "username": "alice",
        "kind": "user",
        "credential": "jwt",
        "roles": ["developer"],
        "permissions": ["read:tasks"],
    }


def test_me_answers_for_an_api_key(client):
    _, key = api_key_create(client=api_client("batch", role("reader", "read:tasks")), name="k")

    body = json.loads(client.get("/users/me", **api_key_header(key)).content)

    assert (body["kind"], body["username"], body["credential"]) == ("client", "batch", "api_key")


def test_me_answers_for_an_oauth_token(client):
    reporting = api_client("reporting", role("reader", "read:tasks"))
    app, secret = oauth_application_create(
        name="job",
        client_type="confidential",
        authorization_grant_type="client-credentials",
        client=reporting,
    )
    token = json.loads(
        client.post(
            "/o/token/",
            f"grant_type=client_credentials&client_id={app.client_id}&client_secret={secret}",
            content_type="application/x-www-form-urlencoded",
        ).content
    )["access_token"]

    body = json.loads(client.get("/users/me", **bearer(token)).content)

    assert (body["username"], body["credential"]) == ("reporting", "oauth2")


def test_me_answers_for_a_console_session(client):
    client.force_login(user("alice", role("developer", "read:tasks")))

    body = json.loads(client.get("/users/me").content)

    assert (body["username"], body["credential"]) == ("alice", "session")


def test_me_without_credentials_is_401_with_bearer_challenge(client):
    response = client.get("/users/me")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert problem(response)["code"] == "not_authenticated"


def test_logins_without_a_request_still_work(client):
    user("alice")

    assert client.login(username="alice", password=PASSWORD)

"""Management API for API clients, keys and OAuth applications: secrets shown once, revocation."""

from __future__ import annotations

import base64

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiClient, ApiKey, Role, User

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    user = User.objects.create_superuser("root", password="a long test password 1")
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_api_key_is_answered_once_and_works_on_the_proxy(staff, client, make_route, upstream):
    Role.objects.create(name="developer")
    created = staff.post(
        "/api/gateway/clients/", {"name": "billing", "roles": ["developer"]}, format="json"
    )
    assert created.status_code == 201, created.content
    answer = staff.post(
        "/api/gateway/api-keys/", {"client": "billing", "name": "prod"}, format="json"
    ).json()
    key = answer["key"]
    assert key.startswith("gwk_") and answer["revoked"] is False
    listed = staff.get(f"/api/gateway/api-keys/{answer['id']}/").json()
    assert "key" not in listed and listed["prefix"] == answer["prefix"]
    assert not ApiKey.objects.filter(key_hash__contains=key).exists()  # only a hash is stored

    make_route("/api/v1/keyed/**", upstream.url, authentication="required")
    assert client.get("/api/v1/keyed/echo", HTTP_X_API_KEY=key).status_code == 200
    assert upstream.received[-1].headers["x-consumer-roles"] == "developer"

    revoked = staff.patch(
        f"/api/gateway/api-keys/{answer['id']}/", {"revoked": True}, format="json"
    )
    assert revoked.json()["revoked"] is True
    assert client.get("/api/v1/keyed/echo", HTTP_X_API_KEY=key).status_code == 401


def test_revoked_key_cannot_be_unrevoked(staff):
    api_client = ApiClient.objects.create(name="batch")
    answer = staff.post(
        "/api/gateway/api-keys/", {"client": api_client.name, "name": "k"}, format="json"
    ).json()
    staff.patch(f"/api/gateway/api-keys/{answer['id']}/", {"revoked": True}, format="json")
    again = staff.patch(f"/api/gateway/api-keys/{answer['id']}/", {"revoked": False}, format="json")
    assert again.status_code == 400
    assert again.json()["errors"][0]["field"] == "revoked"


def test_key_for_an_unknown_client_is_a_400_naming_the_field(staff):
    response = staff.post("/api/gateway/api-keys/", {"client": "ghost", "name": "k"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "client"


def test_oauth_application_answers_its_secret_once_and_issues_tokens(staff, client):
    ApiClient.objects.create(name="batch")
    answer = staff.post(
        "/api/gateway/oauth-applications/",
        {
            "name": "batch",
            "client_type": "confidential",
            "authorization_grant_type": "client-credentials",
            "client": "batch",
        },
        format="json",
    ).json()
    client_id, secret = answer["client_id"], answer["client_secret"]
    assert (
        "client_secret" not in staff.get(f"/api/gateway/oauth-applications/{answer['id']}/").json()
    )
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    token = client.post(
        "/o/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=f"Basic {basic}"
    )
    assert token.status_code == 200, token.content
    assert token.json()["access_token"]


def test_credentials_endpoints_need_a_manager(client):
    assert client.get("/api/gateway/api-keys/").status_code in (401, 403)

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


PUBLIC_APP = {
    "name": "task-board",
    "client_type": "public",
    "authorization_grant_type": "authorization-code",
    "redirect_uris": "https://tasks.example/callback",
}


def test_public_oauth_application_never_gets_a_secret(staff):
    from oauth2_provider.models import get_application_model

    answer = staff.post("/api/gateway/oauth-applications/", PUBLIC_APP, format="json")

    assert answer.status_code == 201, answer.content
    assert "client_secret" not in answer.json()
    # ... and the answer still holds every field its schema requires.
    schema = staff.get("/api/openapi.json").json()
    required = schema["components"]["schemas"]["OAuthApplication"]["required"]
    assert set(required) <= set(answer.json())
    stored = get_application_model().objects.get(client_id=answer.json()["client_id"])
    assert stored.client_secret == ""  # not even a hash of something

    # Becoming confidential gives it a secret, answered that once; back to public drops it.
    confidential = staff.patch(
        f"/api/gateway/oauth-applications/{stored.pk}/",
        {"client_type": "confidential"},
        format="json",
    )
    assert confidential.status_code == 200, confidential.content
    assert len(confidential.json()["client_secret"]) >= 32
    stored.refresh_from_db()
    assert stored.client_secret not in ("", confidential.json()["client_secret"])  # a hash
    staff.patch(
        f"/api/gateway/oauth-applications/{stored.pk}/", {"client_type": "public"}, format="json"
    )
    stored.refresh_from_db()
    assert stored.client_secret == ""


def test_public_application_added_in_the_console_is_stored_without_a_secret():
    from django.test import Client
    from oauth2_provider.models import get_application_model

    root = User.objects.create_superuser("console-root", password="a long test password 1")
    console = Client()
    console.force_login(root)
    form = console.get("/admin/oauth2_provider/application/add/")
    assert form.status_code == 200
    posted_secret = "a-secret-the-console-form-proposed-" + "x" * 20

    response = console.post(
        "/admin/oauth2_provider/application/add/",
        {
            **PUBLIC_APP,
            "client_id": "console-public-app",
            "client_secret": posted_secret,
            "hash_client_secret": "on",
            "algorithm": "",
            "user": "",
            "post_logout_redirect_uris": "",
            "allowed_origins": "",
            "gateway_link-TOTAL_FORMS": "0",
            "gateway_link-INITIAL_FORMS": "0",
            "gateway_link-MIN_NUM_FORMS": "0",
            "gateway_link-MAX_NUM_FORMS": "1",
        },
    )

    assert response.status_code == 302, response.content[:3000]
    assert get_application_model().objects.get(client_id="console-public-app").client_secret == ""

"""The console pages for identity: users, roles, API clients and keys, OAuth2 applications."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from accounts.models import ApiKey, User
from accounts.selectors import principal_for_api_key
from tests.support.identity import api_client, role, user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", password="pw-root-123456"))
    return client


def test_user_page_shows_effective_permissions(admin_client):
    alice = user("alice", role("developer", "read:tasks", "write:tasks"), role("ops", "read:logs"))

    page = admin_client.get(f"/admin/accounts/user/{alice.pk}/change/")

    assert page.status_code == 200
    assert b"read:logs, read:tasks, write:tasks" in page.content


@pytest.mark.parametrize(
    "path",
    [
        "/admin/accounts/user/",
        "/admin/accounts/user/?roles__id__exact=1",
        "/admin/accounts/role/",
        "/admin/accounts/permission/",
        "/admin/accounts/apiclient/",
        "/admin/accounts/apikey/",
        "/admin/accounts/apikey/add/",
        "/admin/oauth2_provider/application/",
        "/admin/oauth2_provider/application/add/",
    ],
)
def test_identity_console_pages_render(admin_client, path):
    role("developer", "read:tasks")
    api_client("batch")

    assert admin_client.get(path).status_code == 200


def test_creating_a_key_in_the_console_shows_it_once(admin_client):
    batch = api_client("batch", role("reader", "read:tasks"))

    response = admin_client.post(
        "/admin/accounts/apikey/add/", {"client": batch.pk, "name": "ci", "expires_at": ""}
    )

    assert response.status_code == 302
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    key = next(word for text in shown for word in text.split() if word.startswith("gwk_"))
    assert principal_for_api_key(raw_key=key).username == "batch"
    assert ApiKey.objects.get(client=batch).key_hash not in " ".join(shown)
    assert key.encode() in admin_client.get("/admin/accounts/apikey/").content  # the message
    assert key.encode() not in admin_client.get("/admin/accounts/apikey/").content  # once only


def test_revoke_action_refuses_the_key(admin_client):
    from accounts.services import api_key_create

    api_key, key = api_key_create(client=api_client("batch"), name="ci")

    admin_client.post(
        "/admin/accounts/apikey/",
        {"action": "revoke", "_selected_action": [api_key.pk]},
    )

    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    with pytest.raises(Exception, match=r"revoked|not valid"):
        principal_for_api_key(raw_key=key)

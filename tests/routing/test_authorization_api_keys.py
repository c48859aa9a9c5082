"""API keys on the proxy: accepted, identified, refused at once when revoked or expired."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from accounts.selectors import forget_api_key_use
from accounts.services import api_key_create, api_key_revoke
from tests.support.identity import (
    api_client,
    api_key_header,
    problem,
    protect,
    role,
    upstream_headers,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def key_route(make_route, upstream):
    """/svc/** needs write:tasks."""
    return protect(make_route("/svc/**", upstream.url), permissions=("write:tasks",))


@pytest.fixture
def batch():
    """An API client `billing-batch` with the `integrator` role."""
    return api_client("billing-batch", role("integrator", "read:tasks", "write:tasks"))


def test_api_key_is_accepted_and_upstream_learns_the_client(gateway, key_route, batch):
    _, key = api_key_create(client=batch, name="prod")

    headers = upstream_headers(gateway.get("/svc/echo", **api_key_header(key)))

    assert headers["x-consumer-id"] == "billing-batch"
    assert headers["x-consumer-username"] == "billing-batch"
    assert headers["x-consumer-roles"] == "integrator"
    assert headers["x-consumer-permissions"] == "read:tasks,write:tasks"


def test_key_is_stored_only_as_its_sha256(batch):
    api_key, key = api_key_create(client=batch, name="prod")

    row = ApiKey.objects.get(pk=api_key.pk)
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key.startswith(f"gwk_{row.prefix}_")
    assert key not in str(ApiKey.objects.filter(pk=api_key.pk).values().first())
    # 32 random bytes, URL-safe base64: 43 characters after the prefix.
    assert len(key[len(f"gwk_{row.prefix}_") :]) == 43


def test_revoked_key_is_refused_on_the_next_request(gateway, key_route, batch, upstream):
    api_key, key = api_key_create(client=batch, name="prod")
    assert gateway.get("/svc/echo", **api_key_header(key)).status_code == 200

    api_key_revoke(api_key=api_key)
    response = gateway.get("/svc/echo", **api_key_header(key))

    assert response.status_code == 401
    assert problem(response)["code"] == "authentication_failed"
    assert upstream.count() == 1


def test_deactivating_the_client_refuses_its_keys_on_the_next_request(gateway, key_route, batch):
    _, key = api_key_create(client=batch, name="prod")
    assert gateway.get("/svc/echo", **api_key_header(key)).status_code == 200

    batch.is_active = False
    batch.save()

    assert gateway.get("/svc/echo", **api_key_header(key)).status_code == 401


def test_removing_the_clients_role_applies_on_the_next_request(gateway, key_route, batch):
    _, key = api_key_create(client=batch, name="prod")
    assert gateway.get("/svc/echo", **api_key_header(key)).status_code == 200

    batch.roles.clear()

    assert gateway.get("/svc/echo", **api_key_header(key)).status_code == 403


def test_expired_key_is_refused(gateway, key_route, batch):
    _, key = api_key_create(
        client=batch, name="old", expires_at=timezone.now() - timedelta(seconds=1)
    )

    response = gateway.get("/svc/echo", **api_key_header(key))

    assert response.status_code == 401
    assert "expired" in problem(response)["detail"]


@pytest.mark.parametrize(
    "key",
    ["", "nonsense", "gwk_00000000_" + "A" * 43, "gwk_zzzzzzzz_" + "A" * 43],
    ids=["empty", "malformed", "unknown", "bad-prefix"],
)
def test_unknown_or_malformed_key_is_refused_with_401(gateway, key_route, key):
    response = gateway.get("/svc/echo", **api_key_header(key))

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_key_with_right_prefix_but_wrong_secret_is_refused(gateway, key_route, batch):
    _, key = api_key_create(client=batch, name="prod")
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")

    assert gateway.get("/svc/echo", **api_key_header(forged)).status_code == 401


def test_last_use_is_recorded_at_most_once_a_minute(gateway, key_route, batch):
    api_key, key = api_key_create(client=batch, name="prod")
    forget_api_key_use(api_key.pk)

    gateway.get("/svc/echo", **api_key_header(key))
    first = ApiKey.objects.get(pk=api_key.pk).last_used_at
    gateway.get("/svc/echo", **api_key_header(key))
    second = ApiKey.objects.get(pk=api_key.pk).last_used_at

    assert first is not None
    assert second == first


def test_editing_the_roles_permissions_applies_on_the_next_request(gateway, key_route, batch):
    _, key = api_key_create(client=batch, name="prod")
    assert gateway.get("/svc/echo", **api_key_header(key)).status_code == 200

    role("integrator", "read:tasks")  # write:tasks taken away from the role

    assert gateway.get("/svc/echo", **api_key_header(key)).status_code == 403


def test_deleting_the_role_applies_on_the_next_request(gateway, key_route, batch):
    _, key = api_key_create(client=batch, name="prod")
    assert gateway.get("/svc/echo", **api_key_header(key)).status_code == 200

    batch.roles.get(name="integrator").delete()

    assert gateway.get("/svc/echo", **api_key_header(key)).status_code == 403


def test_explain_does_not_count_as_a_use_of_the_key(key_route, batch):
    from routing.explain import explain_request

    api_key, key = api_key_create(client=batch, name="prod")
    forget_api_key_use(api_key.pk)

    report = explain_request(method="GET", path="/svc/echo", headers={"X-API-Key": key})

    assert report.status == 200
    assert report.consumer == "client billing-batch"
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at is None

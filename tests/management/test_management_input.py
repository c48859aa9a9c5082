"""NUL characters and oversize bodies in every writable field of every management endpoint.

The fields come from the serializers the router and the URLconf use (a new endpoint or field
is covered by itself); each write method of each endpoint gets a NUL in each field (400 naming
that field, never a database error) and an oversize value in each field (413).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from rest_framework import serializers
from rest_framework.test import APIClient

from accounts.models import ApiClient, Permission, Role, User
from accounts.services import api_key_create, oauth_application_create
from management.api import urls as api_urls
from quotas.models import Quota
from routing.models import Route, Service
from tests.support.shared_db import module_transaction

pytestmark = pytest.mark.django_db
NUL = "a\x00b"


def field_paths(
    serializer: serializers.BaseSerializer[Any], prefix: str = ""
) -> Iterator[tuple[str, Any]]:
    """(error path, body) for every writable leaf field, the body holding NUL at that leaf."""
    fields = getattr(serializer, "fields", {})
    for name, field in fields.items():
        if field.read_only:
            continue
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(field, serializers.ListSerializer):
            for inner, body in field_paths(field.child, ""):  # type: ignore[arg-type]
                yield f"{path}[0].{inner}", {name: [body]}
        elif isinstance(field, serializers.BaseSerializer):
            for inner, body in field_paths(field, ""):
                yield f"{path}.{inner}", {name: body}
        elif isinstance(field, serializers.ListField):
            yield f"{path}[0]", {name: [NUL]}
        elif isinstance(field, serializers.DictField):
            yield f"{path}.key", {name: {"key": NUL}}
        else:
            yield path, {name: NUL}


def _serializer_of(view_class: Any) -> Any:
    serializer_class = getattr(view_class, "serializer_class", None)
    if serializer_class is None:  # config import and explain declare theirs in the schema
        from management.api import serializers as api_serializers

        serializer_class = {
            "ConfigImportView": api_serializers.ConfigImportSerializer,
            "ExplainView": api_serializers.ExplainRequestSerializer,
        }.get(view_class.__name__)
    return serializer_class() if serializer_class else None


def _write_doors() -> Iterator[tuple[str, str, str, str, Any]]:
    """(resource, method, path kind, error path, body) for each write and each field."""
    for prefix, viewset, _ in api_urls.router.registry:
        serializer = viewset.serializer_class()  # type: ignore[attr-defined]
        for method, kind in (("post", "collection"), ("put", "item"), ("patch", "item")):
            for path, body in field_paths(serializer):
                yield prefix, method, kind, path, body
    router_patterns = {str(p.pattern) for p in api_urls.router.urls}
    for pattern in api_urls.urlpatterns:
        route = str(pattern.pattern)
        if route in router_patterns:
            continue
        view_class = pattern.callback.view_class  # type: ignore[union-attr]
        serializer = _serializer_of(view_class)
        if serializer is None or not hasattr(view_class, "post"):
            continue
        for path, body in field_paths(serializer):
            yield route, "post", "plain", path, body


DOORS = list(_write_doors())


def _make(prefix: str) -> int:
    """One object of the resource, for PUT and PATCH."""
    service = Service.objects.get_or_create(name="in-svc", url="http://127.0.0.1:9")[0]
    role = Role.objects.get_or_create(name="in-role")[0]
    client = ApiClient.objects.get_or_create(name="in-client")[0]
    made: Any
    if prefix == "services":
        made = service
    elif prefix == "routes":
        made = Route.objects.create(path="/in/**", service=service)
    elif prefix == "roles":
        made = role
    elif prefix == "permissions":
        made = Permission.objects.create(name="in:perm")
    elif prefix == "users":
        made = User.objects.create_user("in-user")
    elif prefix == "quotas":
        made = Quota.objects.create(role=role, requests_per_day=5)
    elif prefix == "clients":
        made = client
    elif prefix == "api-keys":
        made = api_key_create(client=client, name="k", expires_at=None)[0]
    elif prefix == "oauth-applications":
        made = oauth_application_create(
            name="in-app",
            client_type="confidential",
            authorization_grant_type="client-credentials",
            redirect_uris="",
            client=client,
        )[0]
    else:
        raise AssertionError(f"new resource {prefix}: make one here")
    return int(made.pk)


# Made once for the module (and rolled back after it): the superuser's session and one object
# per resource. A refused write changes nothing, and each test's own changes are undone.
_shared: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def shared_rows(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """The superuser's session and an object of every resource, for the whole module."""
    with module_transaction(django_db_blocker):
        with django_db_blocker.unblock():
            user = User.objects.create_superuser("in-root", "r@example.com", "a long passphrase 42")
            login = Client()
            login.force_login(user)
            _shared["session"] = login.cookies["sessionid"].value
            _shared["objects"] = {
                prefix: _make(prefix) for prefix, _, _ in api_urls.router.registry
            }
        yield
    _shared.clear()


@pytest.fixture
def root(db: Any) -> APIClient:
    """A superuser's session: every door is open, so only the input decides."""
    client = APIClient()
    client.cookies["sessionid"] = _shared["session"]
    return client


def _url(prefix: str, kind: str) -> str:
    if kind == "plain":
        return f"/api/gateway/{prefix}"
    if kind == "collection":
        return f"/api/gateway/{prefix}/"
    return f"/api/gateway/{prefix}/{_shared['objects'][prefix]}/"


@pytest.mark.parametrize(
    ("prefix", "method", "kind", "field", "body"),
    DOORS,
    ids=[f"{d[1].upper()} {d[0]} {d[3]}" for d in DOORS],
)
def test_nul_in_a_field_is_a_400_naming_it(root, prefix, method, kind, field, body):
    response = getattr(root, method)(_url(prefix, kind), body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]


def _oversize(body: Any) -> Any:
    if isinstance(body, dict):
        return {key: _oversize(value) for key, value in body.items()}
    if isinstance(body, list):
        return [_oversize(value) for value in body]
    return "x" * 128 * 1024  # over every endpoint's limit below (config import adds 64 KiB)


@pytest.mark.parametrize(
    ("prefix", "method", "kind", "field", "body"),
    DOORS,
    ids=[f"{d[1].upper()} {d[0]} {d[3]}" for d in DOORS],
)
def test_an_oversize_body_in_a_field_is_a_413(root, settings, prefix, method, kind, field, body):
    settings.GATEWAY_MAX_API_BODY_SIZE = 2048
    settings.GATEWAY_MAX_CONFIG_SIZE = 2048
    response = getattr(root, method)(_url(prefix, kind), _oversize(body), format="json")
    assert response.status_code == 413, response.content[:300]
    assert response.json()["code"] == "payload_too_large"


def test_a_lone_surrogate_is_a_400_not_a_database_error(root):
    body = b'{"name": "ok", "description": "\\ud800"}'
    response = root.generic("POST", "/api/gateway/roles/", body, content_type="application/json")
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["description"]


def test_every_resource_has_writable_fields_in_the_matrix():
    prefixes = {prefix for prefix, _, _ in api_urls.router.registry}
    assert {door[0] for door in DOORS} >= prefixes


def test_the_api_limit_is_gateway_max_api_body_size_not_djangos_upload_limit(root, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024  # Django's own limit must not decide here
    body = {"name": "big-role", "description": "x" * 3000}
    response = root.post("/api/gateway/roles/", body, format="json")
    assert response.status_code == 400  # read and validated: description is too long
    assert [error["field"] for error in response.json()["errors"]] == ["description"]
    settings.GATEWAY_MAX_API_BODY_SIZE = 2048
    refused = root.post("/api/gateway/roles/", body, format="json")
    assert refused.status_code == 413
    assert "GATEWAY_MAX_API_BODY_SIZE" in refused.json()["detail"]

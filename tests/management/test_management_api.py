"""The management API: config-file entries in and out, one validation, versioned changes."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.models import Permission, Role, User
from management.api.access import ManagesGateway
from quotas.models import Quota
from routing.config_version import database_version
from routing.models import Route, Service
from routing.table import route_tables

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def _service(client: APIClient, url: str, name: str = "rd-service") -> dict[str, Any]:
    response = client.post("/api/gateway/services/", {"name": name, "url": url}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.django_db(transaction=True)
def test_route_created_through_the_api_is_served_by_the_proxy(staff, upstream):
    _service(staff, upstream.url)
    route_tables.get()  # a worker that has compiled the config before the change
    before = database_version()
    response = staff.post(
        "/api/gateway/routes/",
        {
            "path": "/api/v1/rd/**",
            "service": "rd-service",
            "strip_prefix": True,
            "timeout": "30s",
            "authentication": "none",
            "rate_limit": {"requests_per_minute": 100},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert database_version() == before + 1  # committed: every node recompiles on its next poll
    route_tables.invalidate()  # this worker's poll is due
    proxied = APIClient().get("/api/v1/rd/echo/hello")
    assert proxied.status_code == 200
    assert proxied["X-Upstream"] == upstream.name
    assert upstream.received[-1].path == "/echo/hello"


def test_route_is_answered_in_the_config_file_shape_with_its_id(staff, upstream):
    _service(staff, upstream.url)
    body = {
        "path": "/api/v1/rd/**",
        "service": "rd-service",
        "timeout": "30s",
        "rate_limit": {"requests_per_minute": 100, "burst": 20},
        "permissions": ["read:tasks"],
    }
    created = staff.post("/api/gateway/routes/", body, format="json").json()
    route = Route.objects.get()
    assert created == {"id": route.pk, **body, "authentication": "required"}
    assert route.timeout_ms == 30_000 and route.rate_limit_burst == 20
    assert staff.get(f"/api/gateway/routes/{route.pk}/").json() == created


def test_invalid_route_answers_400_problem_with_every_error_at_its_location(staff, upstream):
    _service(staff, upstream.url)
    response = staff.post(
        "/api/gateway/routes/",
        {"path": "/admin/**", "service": "rd-service", "timeout": "soon", "retry": -1},
        format="json",
    )
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"path", "timeout", "retry"}
    assert not Route.objects.exists()


def test_route_to_an_unknown_service_is_a_400_on_the_service_field(staff):
    response = staff.post("/api/gateway/routes/", {"path": "/x", "service": "nope"}, format="json")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["service"]


def test_duplicate_service_name_answers_409(staff, upstream):
    _service(staff, upstream.url)
    response = staff.post(
        "/api/gateway/services/", {"name": "rd-service", "url": upstream.url}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"


def test_duplicate_route_path_and_methods_answers_409(staff, upstream):
    _service(staff, upstream.url)
    body = {"path": "/x/**", "service": "rd-service", "methods": ["POST", "GET"]}
    assert staff.post("/api/gateway/routes/", body, format="json").status_code == 201
    body["methods"] = ["GET", "POST"]
    assert staff.post("/api/gateway/routes/", body, format="json").status_code == 409


def test_service_with_routes_cannot_be_deleted_409(staff, upstream):
    service = _service(staff, upstream.url)
    staff.post("/api/gateway/routes/", {"path": "/x", "service": "rd-service"}, format="json")
    response = staff.delete(f"/api/gateway/services/{service['id']}/")
    assert response.status_code == 409
    assert Service.objects.exists()


def test_unknown_id_answers_404_problem(staff):
    response = staff.get("/api/gateway/routes/999999/")
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM


def test_patch_merges_keys_and_null_removes_one(staff, upstream):
    _service(staff, upstream.url)
    route = staff.post(
        "/api/gateway/routes/",
        {"path": "/x", "service": "rd-service", "timeout": "5s", "retry": 2},
        format="json",
    ).json()
    response = staff.patch(
        f"/api/gateway/routes/{route['id']}/", {"timeout": None, "retry": 3}, format="json"
    )
    assert response.status_code == 200
    assert "timeout" not in response.json() and response.json()["retry"] == 3
    assert Route.objects.get().timeout_ms is None


def test_put_replaces_a_service_with_weighted_targets(staff, upstream):
    service = _service(staff, upstream.url)
    body: dict[str, Any] = {
        "name": "rd-service",
        "targets": [
            {"url": upstream.url, "weight": 10},
            {"url": "http://127.0.0.1:9", "weight": 0},
        ],
    }
    response = staff.put(f"/api/gateway/services/{service['id']}/", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["targets"] == sorted(body["targets"], key=lambda t: t["url"])
    assert Service.objects.get().url == ""


def test_lists_filter_and_paginate(staff, upstream):
    _service(staff, upstream.url)
    _service(staff, upstream.url, name="other")
    for index in range(3):
        staff.post(
            "/api/gateway/routes/",
            {"path": f"/r{index}", "service": "rd-service", "enabled": index != 0},
            format="json",
        )
    staff.post("/api/gateway/routes/", {"path": "/other", "service": "other"}, format="json")
    by_service = staff.get("/api/gateway/routes/?service=rd-service").json()
    assert by_service["count"] == 3
    assert staff.get("/api/gateway/routes/?enabled=false").json()["results"][0]["path"] == "/r0"
    assert staff.get("/api/gateway/routes/?search=r2").json()["count"] == 1
    page = staff.get("/api/gateway/routes/?page_size=2&page=2").json()
    assert page["count"] == 4 and len(page["results"]) == 2 and page["next"] is None
    assert staff.get("/api/gateway/routes/?enabled=maybe").status_code == 400


def test_anonymous_is_401_with_a_challenge_and_plain_users_403(make_user):
    anonymous = APIClient().get("/api/gateway/services/")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert anonymous["Content-Type"] == PROBLEM
    client = APIClient()
    client.force_login(make_user("plain", "read:tasks"))
    response = client.get("/api/gateway/services/")
    assert response.status_code == 403
    assert response["Content-Type"] == PROBLEM


def test_a_user_holding_manage_gateway_through_a_role_may_manage(make_user):
    client = APIClient()
    client.force_login(make_user("integrator", "manage:gateway"))
    assert client.get("/api/gateway/services/").status_code == 200


def test_session_writes_need_the_csrf_token(staff_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(staff_user)
    response = client.post("/api/gateway/roles/", {"name": "dev"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Role.objects.exists()


def test_user_password_is_write_only_and_hashed(staff):
    Role.objects.create(name="developer")
    response = staff.post(
        "/api/gateway/users/",
        {"username": "ada", "password": "a long passphrase 42", "roles": ["developer"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert "password" not in response.json()
    assert response.json()["roles"] == ["developer"]
    assert User.objects.get(username="ada").check_password("a long passphrase 42")
    weak = staff.post("/api/gateway/users/", {"username": "bob", "password": "123"}, format="json")
    assert weak.status_code == 400
    assert {e["field"] for e in weak.json()["errors"]} == {"password"}
    duplicate = staff.post("/api/gateway/users/", {"username": "ada"}, format="json")
    assert duplicate.status_code == 409


def test_role_entry_creates_its_permissions_and_duplicate_permission_is_409(staff):
    response = staff.post(
        "/api/gateway/roles/",
        {"name": "developer", "permissions": ["write:tasks", "read:tasks"]},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["permissions"] == ["read:tasks", "write:tasks"]
    dup = staff.post("/api/gateway/permissions/", {"name": "read:tasks"}, format="json")
    assert dup.status_code == 409
    bad = staff.post("/api/gateway/permissions/", {"name": "Read Tasks"}, format="json")
    assert bad.status_code == 400
    assert Permission.objects.count() == 2


def test_quota_for_an_unknown_user_is_a_400_on_the_user_field(staff):
    response = staff.post(
        "/api/gateway/quotas/", {"user": "ghost", "requests_per_day": 5}, format="json"
    )
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["user"]
    # A quota never creates its role, as a route never creates its service.
    no_role = staff.post(
        "/api/gateway/quotas/", {"role": "developer", "requests_per_day": 5}, format="json"
    )
    assert no_role.status_code == 400
    assert [e["field"] for e in no_role.json()["errors"]] == ["role"]
    assert not Role.objects.filter(name="developer").exists()
    Role.objects.create(name="developer")
    created = staff.post(
        "/api/gateway/quotas/", {"role": "developer", "requests_per_day": 5}, format="json"
    )
    assert created.status_code == 201
    assert created.json() == {
        "id": Quota.objects.get().pk,
        "role": "developer",
        "requests_per_day": 5,
    }


def test_a_quota_whose_limits_are_null_is_a_400_not_a_500(staff):
    Role.objects.create(name="developer")
    response = staff.post(
        "/api/gateway/quotas/",
        {"role": "developer", "requests_per_day": None, "requests_per_month": None},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "requests_per_day and/or requests_per_month" in response.json()["errors"][0]["message"]
    assert not Quota.objects.exists()


def test_config_export_then_import_through_the_api_is_a_no_op(staff, upstream):
    _service(staff, upstream.url)
    staff.post("/api/gateway/routes/", {"path": "/x/**", "service": "rd-service"}, format="json")
    exported = staff.get("/api/gateway/config/export/").json()
    assert exported["config"]["routes"][0]["path"] == "/x/**"
    yaml_text = staff.get("/api/gateway/config/export/?output=yaml")
    assert yaml_text["Content-Type"].startswith("application/yaml")
    assert yaml_text.content.decode() == exported["yaml"]
    response = staff.post("/api/gateway/config/import/", {"text": exported["yaml"]}, format="json")
    assert response.json() == {"changes": [], "applied": False}


def test_config_import_dry_run_answers_the_diff_and_invalid_lists_locations(staff, upstream):
    text = f"services:\n- name: a\n  url: {upstream.url}\nroutes:\n- path: /a\n  service: a\n"
    dry = staff.post("/api/gateway/config/import/", {"text": text, "dry_run": True}, format="json")
    assert dry.json() == {"changes": ["+ service a", "+ route ANY /a"], "applied": False}
    assert not Service.objects.exists()
    bad = text + "  timeout: later\n"
    response = staff.post("/api/gateway/config/import/", {"text": bad}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "routes[0].timeout"


def test_explain_reports_the_route_and_the_verdict_without_calling_the_upstream(staff, upstream):
    _service(staff, upstream.url)
    staff.post(
        "/api/gateway/routes/",
        {
            "path": "/api/v1/rd/**",
            "service": "rd-service",
            "methods": ["GET"],
            "permissions": ["read:tasks"],
        },
        format="json",
    )
    route_tables.reset()  # the test's transaction never commits, so the version never moves
    allowed = staff.post(
        "/api/gateway/explain/", {"method": "GET", "path": "/api/v1/rd/tasks"}, format="json"
    ).json()
    assert allowed["route"]["path"] == "/api/v1/rd/**"
    assert allowed["route"]["permissions"] == ["read:tasks"]
    assert allowed["upstream"] == f"{upstream.url}/api/v1/rd/tasks"
    refused = staff.post(
        "/api/gateway/explain/", {"method": "DELETE", "path": "/api/v1/rd/tasks"}, format="json"
    ).json()
    assert refused["status"] == 405 and refused["allowed"] is False
    assert upstream.received == []


def _key_principal(permissions: frozenset[str]) -> Any:
    from accounts.identity import Principal

    return Principal("batch", "batch", frozenset(), permissions, "client", "api_key")


@pytest.mark.parametrize(
    ("permissions", "allowed"),
    [(frozenset({"manage:gateway"}), True), (frozenset({"read:tasks"}), False)],
)
def test_a_key_principal_needs_manage_gateway_in_its_permissions(permissions, allowed):
    from audit.authority import ChangeRefused

    request: Any = SimpleNamespace(user=_key_principal(permissions), method="GET")
    view = SimpleNamespace(section="services")
    if allowed:
        assert ManagesGateway().has_permission(request, view) is True
    else:
        with pytest.raises(ChangeRefused, match="manage:gateway"):
            ManagesGateway().has_permission(request, view)


def test_inactive_staff_is_refused():
    from audit.authority import ChangeRefused

    user = User.objects.create_user("gone", is_staff=True, is_active=False)
    request: Any = SimpleNamespace(user=user, method="GET")
    with pytest.raises(ChangeRefused, match="inactive"):
        ManagesGateway().has_permission(request, SimpleNamespace(section="services"))


def test_only_a_superuser_may_make_a_user_staff(make_user):
    client = APIClient()
    client.force_login(make_user("integrator", "manage:gateway"))
    response = client.post(
        "/api/gateway/users/", {"username": "eve", "is_staff": True}, format="json"
    )
    assert response.status_code == 403
    assert "superuser" in response.json()["detail"]
    assert client.post("/api/gateway/users/", {"username": "eve"}, format="json").status_code == 201


def test_a_non_staff_manager_cannot_change_a_staff_users_password(make_user, staff_user):
    client = APIClient()
    client.force_login(make_user("integrator", "manage:gateway"))
    url = f"/api/gateway/users/{staff_user.pk}/"
    assert client.get(url).status_code == 200
    response = client.patch(url, {"password": "taken over 12345"}, format="json")
    assert response.status_code == 403
    staff_user.refresh_from_db()
    assert staff_user.check_password("a long passphrase 42")


def test_nul_characters_are_a_400_not_a_database_error(staff, upstream):
    assert staff.get("/api/gateway/routes/?service=a%00b").status_code == 400
    assert staff.get("/api/gateway/quotas/?user=a%00b").status_code == 400
    response = staff.post(
        "/api/gateway/quotas/", {"user": "a\x00b", "requests_per_day": 1}, format="json"
    )
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["user"]
    service = {"name": "svc", "url": upstream.url, "openapi": "/open\x00api.json"}
    response = staff.post("/api/gateway/services/", service, format="json")
    assert [e["field"] for e in response.json()["errors"]] == ["openapi"]

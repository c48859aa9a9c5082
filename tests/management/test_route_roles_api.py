"""The management API and the console refuse a route naming a role that does not exist."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from accounts.models import Role
from routing.models import Route

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


@pytest.fixture
def service(staff: APIClient, upstream: Any) -> str:
    response = staff.post(
        "/api/gateway/services/", {"name": "rd-service", "url": upstream.url}, format="json"
    )
    assert response.status_code == 201, response.content
    return "rd-service"


def _role_errors(response: Any) -> list[str]:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    errors = response.json()["errors"]
    assert {e["field"] for e in errors} == {"roles"}
    return [e["message"] for e in errors]


def test_create_naming_unknown_roles_is_400_naming_each_and_writes_nothing(staff, service):
    Role.objects.create(name="admin")
    body = {"path": "/x/**", "service": service, "roles": ["admin", "admn", "ops"]}
    messages = _role_errors(staff.post("/api/gateway/routes/", body, format="json"))
    assert len(messages) == 2
    assert "role 'admn' is not defined" in messages[0]
    assert "role 'ops' is not defined" in messages[1]
    assert not Route.objects.exists()
    assert list(Role.objects.values_list("name", flat=True)) == ["admin"]


def test_an_unknown_service_and_an_unknown_role_are_reported_together(staff):
    body = {"path": "/x/**", "service": "nope", "roles": ["admn"]}
    response = staff.post("/api/gateway/routes/", body, format="json")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["service", "roles"]
    assert not Role.objects.exists()


def test_create_with_an_existing_role_is_accepted(staff, service):
    Role.objects.create(name="admin")
    body = {"path": "/x/**", "service": service, "roles": ["admin"]}
    response = staff.post("/api/gateway/routes/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["roles"] == ["admin"]


def test_put_and_patch_naming_an_unknown_role_are_400_and_change_nothing(staff, service):
    Role.objects.create(name="admin")
    body = {"path": "/x/**", "service": service, "roles": ["admin"], "timeout": "5s"}
    route = staff.post("/api/gateway/routes/", body, format="json").json()
    url = f"/api/gateway/routes/{route['id']}/"
    put = staff.put(url, {**body, "roles": ["admn"], "timeout": "9s"}, format="json")
    assert "role 'admn' is not defined" in _role_errors(put)[0]
    patch = staff.patch(url, {"roles": ["admin", "admn"], "timeout": "9s"}, format="json")
    assert "role 'admn' is not defined" in _role_errors(patch)[0]
    stored = Route.objects.get()
    assert stored.timeout_ms == 5000
    assert list(stored.roles.values_list("name", flat=True)) == ["admin"]
    assert not Role.objects.filter(name="admn").exists()


def test_more_than_100_roles_or_permissions_is_400_on_that_field(staff, service):
    many = [f"r{n}" for n in range(101)]
    body = {"path": "/x/**", "service": service, "roles": many}
    response = staff.post("/api/gateway/routes/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "field": "roles",
            "message": "lists 101 names; at most 100 are allowed.",
            "type": "invalid",
        }
    ]
    body = {"path": "/x/**", "service": service, "permissions": [f"read:p{n}" for n in range(101)]}
    response = staff.post("/api/gateway/routes/", body, format="json")
    assert [e["field"] for e in response.json()["errors"]] == ["permissions"]
    assert not Route.objects.exists() and not Role.objects.exists()


def test_config_import_through_the_api_refuses_an_undefined_route_role(staff, upstream):
    text = (
        f"services:\n- name: a\n  url: {upstream.url}\nroutes:\n- path: /a\n  service: a\n"
        "  roles: [admn]\nroles:\n- name: admin\n"
    )
    response = staff.post("/api/gateway/config/import/", {"text": text}, format="json")
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "routes[0].roles"
    assert error["message"].startswith("line 7, column 11: role 'admn' is not defined")
    assert not Role.objects.exists() and not Route.objects.exists()


def test_console_import_page_refuses_an_undefined_route_role(staff_user, client, upstream):
    client.force_login(staff_user)
    text = (
        f"services:\n- name: a\n  url: {upstream.url}\nroutes:\n- path: /a\n  service: a\n"
        "  roles: [admn]\n"
    )
    upload = SimpleUploadedFile("c.yaml", text.encode())
    response = client.post("/admin/gateway/config/", {"file": upload, "apply": "1"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "line 7, column 11: routes[0].roles: role &#x27;admn&#x27; is not defined" in page
    assert "Nothing was changed" in page
    assert not Role.objects.exists() and not Route.objects.exists()


def test_an_operator_cannot_create_a_role_through_a_route(upstream):
    # The old door: an operator may change routes but not roles, yet a route naming a new role
    # created it (no `+ role` line in the diff asked for the right to add roles).
    from django.contrib.auth.models import Group

    from accounts.models import User
    from audit.roles import OPERATOR, ensure_console_groups

    ensure_console_groups()
    operator = User.objects.create_user("opx", password="a long passphrase 42", is_staff=True)
    operator.groups.add(Group.objects.get(name=OPERATOR))
    api = APIClient()
    api.force_authenticate(operator)
    text = (
        f"services:\n- name: a\n  url: {upstream.url}\nroutes:\n- path: /a\n  service: a\n"
        "  roles: [made-by-route]\n"
    )
    imported = api.post("/api/gateway/config/import/", {"text": text}, format="json")
    assert imported.status_code == 400
    assert [e["field"] for e in imported.json()["errors"]] == ["routes[0].roles"]
    service = api.post("/api/gateway/services/", {"name": "b", "url": upstream.url}, format="json")
    assert service.status_code == 201, service.content
    body = {"path": "/b", "service": "b", "roles": ["made-by-route"]}
    assert [
        e["field"] for e in _role_errors_of(api.post("/api/gateway/routes/", body, format="json"))
    ] == ["roles"]
    assert not Role.objects.exists() and not Route.objects.exists()


def _role_errors_of(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 400, response.content
    return list(response.json()["errors"])

"""History and rollback at the Django test-client level: recording, diffs, restore, undo."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.models import Permission, Role, User
from audit.changesets import recording
from audit.roles import OPERATOR, VIEWER
from routing.config_version import current_version
from routing.configfile.service import config_import
from routing.models import Route, Service

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user_client() -> tuple[User, Client]:
    """A superuser logged in to the console."""
    user = User.objects.create_superuser("boss", "boss@example.com", "a long passphrase 42")
    client = Client()
    client.force_login(user)
    return user, client


def _member(name: str, group: str) -> Client:
    user = User.objects.create_user(name, password="a long passphrase 42", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


def _route(service: Service, **fields: Any) -> Route:
    return Route.objects.create(path="/api/v1/h/**", service=service, **fields)


def test_change_is_recorded_with_user_reason_and_diff_on_the_history_page(admin_user_client):
    user, client = admin_user_client
    service = Service.objects.create(name="hist", url="http://127.0.0.1:9001")
    route = _route(service, timeout_ms=1000)
    with recording(user=user, reason="slow upstream"):
        route.timeout_ms = 2500
        route.save()

    latest = route.history.first()
    assert latest.history_user == user
    assert latest.history_change_reason == "slow upstream"
    page = client.get(f"/admin/routing/route/{route.pk}/history/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "slow upstream" in html
    assert "<code>timeout_ms</code>" in html
    assert ">1000</del>" in html and ">2500</ins>" in html


@pytest.mark.django_db(transaction=True)  # the version moves on commit, as in production
def test_restore_brings_back_fields_and_m2m_permissions_and_bumps_the_version(
    admin_user_client,
):
    user, client = admin_user_client
    read, write = (
        Permission.objects.create(name="read:h"),
        Permission.objects.create(name="write:h"),
    )
    service = Service.objects.create(name="hist", url="http://127.0.0.1:9001")
    route = _route(service, timeout_ms=1000)
    route.permissions.set([read])
    good = route.history.first()  # the row recorded after the permissions were set
    route.timeout_ms = 9000
    route.save()
    route.permissions.set([write])
    before = current_version()

    response = client.post(
        f"/admin/gateway/history/routing.route/{good.history_id}/restore/",
        {"reason": "bad deploy"},
    )
    assert response.status_code == 302
    route.refresh_from_db()
    assert route.timeout_ms == 1000
    assert list(route.permissions.values_list("name", flat=True)) == ["read:h"]
    assert current_version() > before
    rollback = route.history.first()
    assert rollback.history_user == user
    assert rollback.history_change_reason.startswith("rollback of route")
    assert rollback.history_change_reason.endswith(": bad deploy")


def test_restoring_a_deleted_route_recreates_it_with_its_roles(admin_user_client):
    _, client = admin_user_client
    role = Role.objects.create(name="dev")
    service = Service.objects.create(name="hist", url="http://127.0.0.1:9001")
    route = _route(service)
    route.roles.set([role])
    pk = route.pk
    route.delete()
    deletion = Route.history.filter(id=pk).first()
    assert deletion.history_type == "-"

    client.post(f"/admin/gateway/history/routing.route/{deletion.history_id}/restore/")
    restored = Route.objects.get(pk=pk)
    assert list(restored.roles.all()) == [role]


def test_restore_that_fails_validation_is_refused_with_a_message(admin_user_client):
    _, client = admin_user_client
    service = Service.objects.create(name="hist", url="http://127.0.0.1:9001")
    route = _route(service)
    pk = route.pk
    route.delete()
    service.delete()  # the old version points at a service that no longer exists
    deletion = Route.history.filter(id=pk).first()

    response = client.post(
        f"/admin/gateway/history/routing.route/{deletion.history_id}/restore/", follow=True
    )
    assert not Route.objects.filter(pk=pk).exists()
    assert "cannot go back to that version" in response.content.decode()


IMPORT = (
    "services:\n- name: imported\n  url: http://127.0.0.1:9002\n"
    "routes:\n- path: /api/v1/imported/**\n  service: imported\n  authentication: none\n"
    "  permissions: [read:imported]\nroles: []\nquotas: []\n"
)


def test_config_import_is_one_change_set_and_undo_reverts_it_whole(admin_user_client):
    user, client = admin_user_client
    existing = Service.objects.create(name="keep", url="http://127.0.0.1:9003")
    text = IMPORT.replace(
        "services:\n", "services:\n- name: keep\n  url: http://127.0.0.1:9004\n", 1
    )
    result = config_import(text=text, by=user, via="test")
    assert result.applied and result.change_set

    from audit.selectors import change_set_records

    records = change_set_records(change_set=result.change_set)
    kinds = {record.instance_type.__name__ for record in records}
    assert {"Service", "Route", "Permission"} <= kinds
    assert {record.history_change_reason for record in records} == {"config import by boss"}

    page = client.get(f"/admin/gateway/history/?change_set={result.change_set}")
    assert "config import by boss" in page.content.decode()
    response = client.post(f"/admin/gateway/history/change-sets/{result.change_set}/undo/")
    assert response.status_code == 302
    assert not Service.objects.filter(name="imported").exists()
    assert not Route.objects.filter(path="/api/v1/imported/**").exists()
    assert not Permission.objects.filter(name="read:imported").exists()
    existing.refresh_from_db()
    assert existing.url == "http://127.0.0.1:9003"


def test_viewer_sees_history_but_cannot_edit_or_roll_back():
    service = Service.objects.create(name="hist", url="http://127.0.0.1:9001")
    route = _route(service)
    viewer = _member("vera", VIEWER)

    page = viewer.get(f"/admin/routing/route/{route.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert viewer.get(f"/admin/routing/route/{route.pk}/history/").status_code == 200
    record = route.history.first()
    url = f"/admin/gateway/history/routing.route/{record.history_id}/restore/"
    assert viewer.post(url).status_code == 403
    assert viewer.post("/admin/routing/route/add/", {"path": "/x"}).status_code == 403
    assert viewer.post("/admin/gateway/config/", {"text": IMPORT, "apply": "1"}).status_code == 302
    assert not Service.objects.filter(name="imported").exists()


def test_operator_edits_routes_but_only_views_users_and_roles():
    operator = _member("olga", OPERATOR)
    assert operator.get("/admin/routing/route/add/").status_code == 200
    assert operator.get("/admin/routing/service/add/").status_code == 200
    assert operator.get("/admin/accounts/user/add/").status_code == 403
    assert operator.get("/admin/accounts/role/add/").status_code == 403
    assert operator.get("/admin/accounts/user/").status_code == 200
    response = operator.post("/admin/gateway/config/", {"text": IMPORT, "apply": "1"})
    assert response.status_code == 302
    assert Service.objects.filter(name="imported").exists()


def test_management_api_holds_staff_to_their_admin_role():
    from rest_framework.test import APIClient

    def api(name: str, group: str) -> APIClient:
        user = User.objects.create_user(name, password="a long passphrase 42", is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        client = APIClient()
        client.force_login(user)
        return client

    viewer, operator = api("vic", VIEWER), api("oscar", OPERATOR)
    service = {"name": "api-svc", "url": "http://127.0.0.1:9001"}
    assert viewer.get("/api/gateway/services/").status_code == 200
    assert viewer.post("/api/gateway/services/", service, format="json").status_code == 403
    assert operator.post("/api/gateway/services/", service, format="json").status_code == 201
    assert operator.get("/api/gateway/roles/").status_code == 200
    role = {"name": "nope", "permissions": []}
    assert operator.post("/api/gateway/roles/", role, format="json").status_code == 403
    body = {"text": IMPORT}
    assert viewer.post("/api/gateway/config/import/", body, format="json").status_code == 403
    assert operator.post("/api/gateway/config/import/", body, format="json").status_code == 200
    assert (
        viewer.post(
            "/api/gateway/explain/", {"method": "GET", "path": "/x"}, format="json"
        ).status_code
        == 200
    )


def test_console_groups_are_created_idempotently_with_their_permissions():
    from audit.roles import ensure_console_groups

    first = ensure_console_groups()
    assert ensure_console_groups() == first
    operator = Group.objects.get(name=OPERATOR)
    codes = set(operator.permissions.values_list("codename", flat=True))
    assert {"change_route", "add_service", "delete_target", "change_quota"} <= codes
    assert "change_user" not in codes and "change_role" not in codes and "view_user" in codes
    viewer_codes = set(
        Group.objects.get(name=VIEWER).permissions.values_list("codename", flat=True)
    )
    assert all(code.startswith("view_") for code in viewer_codes)


def test_quota_form_explains_a_missing_or_double_subject(admin_user_client):
    _, client = admin_user_client
    role = Role.objects.create(name="dev")
    user = User.objects.create_user("dana")
    both = client.post(
        "/admin/quotas/quota/add/", {"role": role.pk, "user": user.pk, "requests_per_day": 5}
    )
    assert "Choose exactly one of role, user or API client" in both.content.decode()
    none = client.post("/admin/quotas/quota/add/", {"role": role.pk})
    assert "Set a daily limit, a monthly limit, or both." in none.content.decode()


def test_role_page_lists_its_people_inline_and_users_show_their_console_role(admin_user_client):
    _, client = admin_user_client
    role = Role.objects.create(name="dev")
    User.objects.create_user("dana").roles.add(role)
    page = client.get(f"/admin/accounts/role/{role.pk}/change/").content.decode()
    assert "People with this role" in page and "dana" in page
    listing = client.get("/admin/accounts/user/").content.decode()
    assert "console role" in listing.lower() and ">admin<" in listing


def test_api_write_with_a_bearer_token_is_recorded_naming_the_token_holder():
    from rest_framework.test import APIClient

    from accounts.services import token_pair_issue

    holder = User.objects.create_user("integrator", password="a long passphrase 42")
    role = Role.objects.create(name="integrations")
    role.permissions.set([Permission.objects.create(name="manage:gateway")])
    holder.roles.add(role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_pair_issue(user=holder)['access']}")

    body = {"name": "token-svc", "url": "http://127.0.0.1:9001"}
    assert client.post("/api/gateway/services/", body, format="json").status_code == 201
    record = Service.objects.get(name="token-svc").history.first()
    assert record.history_user is None  # a token is not a console account
    assert "integrator" in record.history_change_reason


def test_history_offers_restore_on_older_versions_only_and_undo_keeps_the_typed_reason(
    admin_user_client,
):
    user, client = admin_user_client
    service = Service.objects.create(name="undo", url="http://127.0.0.1:9001")
    route = _route(service, timeout_ms=1000)
    with recording(user=user, reason="slower"):
        route.timeout_ms = 2500
        route.save()
    newest, older = route.history.all()[:2]

    html = client.get(f"/admin/routing/route/{route.pk}/history/").content.decode()
    rows = re.findall(r'<tr class="history-row" data-history-id="(\d+)">(.*?)</tr>', html, re.S)
    by_id = {int(history_id): row for history_id, row in rows}
    assert "Restore this version" not in by_id[newest.history_id]  # it would change nothing
    assert "Restore this version" in by_id[older.history_id]
    assert "Undo change set" in by_id[newest.history_id]
    # One reason box per row, sent by whichever button is pressed.
    assert by_id[newest.history_id].count('name="reason"') == 1

    response = client.post(
        f"/admin/gateway/history/change-sets/{newest.change_set}/undo/",
        {"reason": "timeouts were fine", "next": f"/admin/routing/route/{route.pk}/history/"},
    )
    assert response.status_code == 302
    route.refresh_from_db()
    assert route.timeout_ms == 1000
    undo = route.history.first()
    assert undo.history_change_reason == (
        f"undo of change set {newest.change_set[:8]} by boss: timeouts were fine"
    )

"""CONTRACT section 3's table, door by door: every role against every way to change the gateway.

The doors are generated, not listed: every management API route from the router and the
URLconf, every model page the console registers, every config-file section, every tracked
model's rollback. A new endpoint, model page or section lands in this matrix by itself (and
fails it until the table below says what it is).

The expected outcome is written here independently of audit.authority, so a wrong table
there fails here. The operator and the viewer also hold manage:gateway through a gateway
role: their console role must decide, not that permission.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver
from rest_framework.test import APIClient

from accounts.models import ApiClient, Permission, Role, User
from audit.roles import OPERATOR, VIEWER, ensure_console_groups
from audit.selectors import tracked_models
from management.api import urls as api_urls
from quotas.models import Quota
from routing.configfile.spec import ConfigSpec
from routing.models import Route, Service, Target
from tests.support.shared_db import module_transaction

pytestmark = pytest.mark.django_db

PASSWORD = "a long passphrase 42"
ROLES = ("superuser", "manager", "operator", "viewer", "plain", "anonymous")
OPERATOR_SECTIONS = {"services", "targets", "routes", "quotas"}
STAFF_ROLES = {"superuser", "operator", "viewer"}

# The management API's resources -> the table's section (a new resource must be added here).
API_SECTIONS = {
    "services": "services",
    "routes": "routes",
    "roles": "roles",
    "permissions": "permissions",
    "users": "users",
    "quotas": "quotas",
    "clients": "clients",
    "api-keys": "api-keys",
    "oauth-applications": "oauth-applications",
}
# Endpoints outside the router: what they are for the table (reads, whatever the method).
READ_ONLY_ENDPOINTS = {"config/export/", "config/import/", "explain/"}

# Console model pages an operator may change (the traffic config); all others it only views.
OPERATOR_MODELS = {
    "routing.service",
    "routing.target",
    "routing.route",
    "quotas.quota",
    "quotas.userquotastatus",
    "quotas.clientquotastatus",
    "quotas.usage",
    "quotas.quotaadjustment",
}
SUPERUSER_ONLY_MODELS = {"auth.group"}  # console roles: who administers the console


def table(role: str, action: str, section: str, *, staff_target: bool = False) -> bool:
    """CONTRACT section 3, as this test reads it."""
    if role == "superuser":
        return True
    if role in ("plain", "anonymous"):
        return False
    if action == "view":
        return True
    if staff_target:
        return False
    if role == "manager":
        return section != "console-roles"
    if role == "operator":
        return section in OPERATOR_SECTIONS
    return False


# A token from /auth/token/ is reused by the module's tests while it is this young (its
# lifetime, JWT_ACCESS_TOKEN_LIFETIME, is 5 minutes): one login per role, not one per test.
TOKEN_REUSE_SECONDS = 60.0


class Callers:
    """The module's accounts, their console sessions and their tokens, made once."""

    def __init__(self) -> None:
        self.user_ids: dict[str, int] = {}
        self.sessions: dict[str, str] = {}
        self.tokens: dict[str, tuple[str, float]] = {}

    def forget(self) -> None:
        """Drop everything (the rows are rolled back with the module's transaction)."""
        self.user_ids.clear()
        self.sessions.clear()
        self.tokens.clear()

    def create(self) -> None:
        """One account per role; the operator and viewer also hold manage:gateway by role."""
        ensure_console_groups()
        manage = Role.objects.create(name="integrators")
        manage.permissions.add(Permission.objects.get_or_create(name="manage:gateway")[0])
        for role in ROLES[:-1]:
            user = User.objects.create_user(
                f"{role}-acct",
                password=PASSWORD,
                is_staff=role in STAFF_ROLES,
                is_superuser=role == "superuser",
            )
            if role in ("manager", "operator", "viewer"):
                user.roles.add(manage)
            if role == "operator":
                user.groups.add(Group.objects.get(name=OPERATOR))
            if role == "viewer":
                user.groups.add(Group.objects.get(name=VIEWER))
            self.user_ids[role] = user.pk
            login = Client()
            login.force_login(user)
            self.sessions[user.username] = login.cookies["sessionid"].value
            self.token(user)

    def token(self, user: User) -> str:
        """An access token for `user` from /auth/token/, fresh enough to use."""
        token, minted = self.tokens.get(user.username, ("", 0.0))
        if time.monotonic() - minted < TOKEN_REUSE_SECONDS:
            return token
        answer = APIClient().post(
            "/auth/token/", {"username": user.username, "password": PASSWORD}, format="json"
        )
        assert answer.status_code == 200, answer.content
        token = answer.json()["access"]
        self.tokens[user.username] = (token, time.monotonic())
        return token


_callers = Callers()


@pytest.fixture(scope="module", autouse=True)
def shared_callers(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Callers]:
    """The accounts every case of the matrix uses: made once per module, rolled back after."""
    with module_transaction(django_db_blocker):
        with django_db_blocker.unblock():
            _callers.create()
        yield _callers
    _callers.forget()


@pytest.fixture
def accounts(db: Any, shared_callers: Callers) -> dict[str, User | None]:
    """The module's accounts as this test's own objects (a test's edits stay its own)."""
    made: dict[str, User | None] = {"anonymous": None}
    by_id = User.objects.in_bulk(list(shared_callers.user_ids.values()))
    for role, pk in shared_callers.user_ids.items():
        made[role] = by_id[pk]
    return made


def _sign_in(client: Client, user: User) -> None:
    """The account's console session (made once for the module) on `client`."""
    client.cookies["sessionid"] = _callers.sessions[user.username]


def api_client(user: User | None, credential: str = "session") -> APIClient:
    """A management API client with the account's console session or JWT (or nothing)."""
    client = APIClient()
    if user is None:
        return client
    if credential == "jwt":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {_callers.token(user)}")
    else:
        _sign_in(client, user)
    return client


def console_client(user: User | None) -> Client:
    """A browser-like console client."""
    client = Client()
    if user is not None:
        _sign_in(client, user)
    return client


def assert_outcome(response: Any, allowed: bool, door: str) -> None:
    """Allowed: anything but 401/403; denied: 401 + challenge (anonymous) or 403 problem."""
    status = response.status_code
    if allowed:
        assert status not in (401, 403), f"{door}: refused ({status}) but the table allows it"
        assert status < 500, f"{door}: {status}"
        return
    assert status in (401, 403), f"{door}: {status}, but the table refuses it"
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer"), door
    assert response["Content-Type"] == "application/problem+json", door
    assert response.json()["detail"], door


# --- the management API: every route of the URLconf -------------------------------------------


def _router_doors() -> Iterator[tuple[str, str, str, str]]:
    """(method, path, action, section) for each route the router serves."""
    for prefix, viewset, _basename in api_urls.router.registry:
        assert prefix in API_SECTIONS, f"new endpoint {prefix}: add it to API_SECTIONS"
        section = API_SECTIONS[prefix]
        actions = {
            name
            for name in ("list", "create", "retrieve", "update", "partial_update", "destroy")
            if hasattr(viewset, name)
        }
        collection = f"/api/gateway/{prefix}/"
        item = f"{collection}999999999/"
        for name, method, path, action in (
            ("list", "get", collection, "view"),
            ("create", "post", collection, "add"),
            ("retrieve", "get", item, "view"),
            ("update", "put", item, "change"),
            ("partial_update", "patch", item, "change"),
            ("destroy", "delete", item, "delete"),
        ):
            if name in actions:
                yield method, path, action, section


def _plain_doors() -> Iterator[tuple[str, str, str, str]]:
    """The non-router endpoints, with each method their view answers."""
    router_patterns = {str(p.pattern) for p in api_urls.router.urls}
    for pattern in api_urls.urlpatterns:
        assert isinstance(pattern, URLPattern | URLResolver)
        route = str(pattern.pattern)
        if route in router_patterns:
            continue
        assert route in READ_ONLY_ENDPOINTS, f"new endpoint {route}: say what it is"
        view_class = pattern.callback.view_class  # type: ignore[union-attr]
        for method in ("get", "post", "put", "patch", "delete"):
            if hasattr(view_class, method):
                yield method, f"/api/gateway/{route}", "view", "config"


API_DOORS = sorted({*_router_doors(), *_plain_doors()})


def _door_id(door: tuple[str, str, str, str]) -> str:
    return f"{door[0].upper()} {door[1]}"


CALLERS = [(role, "session") for role in ROLES] + [(role, "jwt") for role in ROLES[:-1]]


@pytest.mark.parametrize(("role", "credential"), CALLERS, ids=[f"{r}-{c}" for r, c in CALLERS])
@pytest.mark.parametrize("door", API_DOORS, ids=[_door_id(d) for d in API_DOORS])
def test_management_api_endpoint(accounts, role, credential, door):
    method, path, action, section = door
    body: dict[str, Any] = {}
    if path.endswith("config/import/"):
        body = {"text": "services: []\n", "dry_run": True}
    elif path.endswith("explain/"):
        body = {"method": "GET", "path": "/nothing"}
    client = api_client(accounts[role], credential)
    response = getattr(client, method)(path, body, format="json")
    door_name = f"{role} ({credential}) {method.upper()} {path}"
    assert_outcome(response, table(role, action, section), door_name)


def test_the_api_matrix_covers_every_resource_and_method():
    prefixes = {prefix for prefix, _, _ in api_urls.router.registry}
    assert prefixes == set(API_SECTIONS)
    assert len(API_DOORS) >= 6 * len(prefixes) - 2  # api-keys/users may lack an action


# --- config import: each section of the file, through the API and the console page ----------

SECTION_DOCUMENTS = {
    "services": "services:\n- name: added-svc\n  url: http://127.0.0.1:9\n",
    "routes": "routes:\n- path: /added/**\n  service: base-svc\n",
    "roles": "roles:\n- name: integrators\n  permissions: [manage:gateway, read:more]\n",
    "quotas": "quotas:\n- role: base-role\n  requests_per_day: 5\n",
}
SECTIONS = [f.name for f in dataclasses.fields(ConfigSpec)]


@pytest.fixture
def base_config(accounts) -> None:
    """What every section document refers to: a service and a role."""
    Service.objects.create(name="base-svc", url="http://127.0.0.1:9")
    Role.objects.create(name="base-role")


def test_every_config_section_has_a_document():
    assert set(SECTIONS) == set(SECTION_DOCUMENTS)


def _changed(section: str) -> bool:
    if section == "services":
        return Service.objects.filter(name="added-svc").exists()
    if section == "routes":
        return Route.objects.filter(path="/added/**").exists()
    if section == "roles":
        return Role.objects.filter(permissions__name="read:more").exists()
    return Quota.objects.filter(role__name="base-role").exists()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("section", SECTIONS)
def test_config_import_section_through_the_api(accounts, base_config, role, section):
    response = api_client(accounts[role]).post(
        "/api/gateway/config/import/", {"text": SECTION_DOCUMENTS[section]}, format="json"
    )
    action = "change" if section == "roles" else "add"
    allowed = table(role, action, section)
    assert_outcome(response, allowed, f"{role} imports {section}")
    assert _changed(section) is allowed


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("section", SECTIONS)
def test_config_import_section_through_the_console(accounts, base_config, role, section):
    client = console_client(accounts[role])
    response = client.post(
        "/admin/gateway/config/", {"text": SECTION_DOCUMENTS[section], "apply": "1"}
    )
    action = "change" if section == "roles" else "add"
    allowed = table(role, action, section) and role in STAFF_ROLES
    assert response.status_code in (200, 302, 403)
    assert _changed(section) is allowed, f"{role} imported {section} in the console"


def test_the_import_command_has_full_rights_through_the_same_check(accounts, base_config, tmp_path):
    from django.core.management import call_command

    path = tmp_path / "roles.yaml"
    path.write_text(SECTION_DOCUMENTS["roles"])
    call_command("gateway", "import", str(path))
    assert _changed("roles")


# --- the console's model pages: every registered ModelAdmin -----------------------------------

CONSOLE_MODELS = sorted(
    (model._meta.app_label, model._meta.model_name, type(model_admin))
    for model, model_admin in admin.site._registry.items()
)


def _console_section_allows(role: str, label: str, action: str) -> bool:
    if role not in STAFF_ROLES:  # the console signs in staff only
        return False
    if label in SUPERUSER_ONLY_MODELS:
        section = "console-roles"
    else:
        section = "services" if label in OPERATOR_MODELS else "other"
    return table(role, action, section)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    "page", CONSOLE_MODELS, ids=[f"{app}.{model}" for app, model, _ in CONSOLE_MODELS]
)
def test_console_model_page(accounts, role, page):
    app, model, admin_class = page
    label = f"{app}.{model}"
    client = console_client(accounts[role])
    doors = [("view", f"/admin/{app}/{model}/")]
    # A page that never offers "add" (read-only history, status pages) has no add door.
    if admin_class.has_add_permission is admin.ModelAdmin.has_add_permission:
        doors.append(("add", f"/admin/{app}/{model}/add/"))
    for action, path in doors:
        response = client.get(path)
        allowed = _console_section_allows(role, label, action)
        if allowed:
            assert response.status_code == 200, f"{role} {action} {label}: {response.status_code}"
        else:
            assert response.status_code in (302, 403), f"{role} {action} {label}"
            if response.status_code == 302:
                assert "/admin/login/" in response["Location"]


# --- rollback: every tracked model --------------------------------------------------------------


def _tracked_object(label: str) -> Any:
    """An object of a tracked model, changed once after creation (so it has two versions)."""
    service = Service.objects.get_or_create(name="rb-svc", url="http://127.0.0.1:9")[0]
    role = Role.objects.get_or_create(name="rb-role")[0]
    made: Any
    if label == "accounts.permission":
        made = Permission.objects.create(name="rb:perm")
        made.description = "changed"
    elif label == "accounts.role":
        made = Role.objects.create(name="rb-other")
        made.description = "changed"
    elif label == "accounts.apiclient":
        made = ApiClient.objects.create(name="rb-client")
        made.description = "changed"
    elif label == "routing.service":
        made = service
        made.description = "changed"
    elif label == "routing.target":
        made = Target.objects.create(service=service, url="http://127.0.0.1:10")
        made.weight = 7
    elif label == "routing.route":
        made = Route.objects.create(path="/rb/**", service=service)
        made.timeout_ms = 1234
    elif label == "quotas.quota":
        made = Quota.objects.create(role=role, requests_per_day=5)
        made.requests_per_day = 6
    else:
        raise AssertionError(f"new tracked model {label}: make one here")
    made.save()
    return made


ROLLBACK_SECTIONS = {
    "accounts.permission": "permissions",
    "accounts.role": "roles",
    "accounts.apiclient": "clients",
    "routing.service": "services",
    "routing.target": "targets",
    "routing.route": "routes",
    "quotas.quota": "quotas",
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("label", [m._meta.label_lower for m in tracked_models()])
def test_rollback_of_each_tracked_model(accounts, role, label):
    obj = _tracked_object(label)
    first = obj.history.order_by("history_id").first()
    client = console_client(accounts[role])
    response = client.post(f"/admin/gateway/history/{label}/{first.history_id}/restore/")
    allowed = role in STAFF_ROLES and table(role, "change", ROLLBACK_SECTIONS[label])
    after = obj.history.count()
    if allowed:
        assert response.status_code == 302 and "/admin/login/" not in response["Location"]
        assert after == 3, f"{role} could not roll back {label}"
    else:
        assert response.status_code in (302, 403)
        assert after == 2, f"{role} rolled back {label}"


def test_undo_of_an_import_touching_roles_is_refused_to_an_operator(accounts, base_config):
    from audit.authority import ChangeRefused
    from audit.services import undo_change_set
    from routing.configfile.service import config_import

    result = config_import(text=SECTION_DOCUMENTS["roles"])
    with pytest.raises(ChangeRefused):
        undo_change_set(change_set=result.change_set, user=accounts["operator"])
    assert Role.objects.filter(permissions__name="read:more").exists()
    undo_change_set(change_set=result.change_set, user=accounts["superuser"])
    assert not Role.objects.filter(permissions__name="read:more").exists()


# --- user and role edits ------------------------------------------------------------------------

TARGETS = ("superuser", "operator", "plain")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("target", TARGETS)
def test_user_edit_through_the_api(accounts, role, target):
    victim = accounts[target]
    assert victim is not None
    before = victim.password
    response = api_client(accounts[role]).patch(
        f"/api/gateway/users/{victim.pk}/", {"password": "taken over 12345 x"}, format="json"
    )
    allowed = table(role, "change", "users", staff_target=victim.is_staff)
    assert_outcome(response, allowed, f"{role} changes {target}'s password")
    victim.refresh_from_db()
    assert (victim.password != before) is allowed


@pytest.mark.parametrize("role", ROLES)
def test_making_an_account_staff_through_the_api(accounts, role):
    response = api_client(accounts[role]).post(
        "/api/gateway/users/", {"username": "newstaff", "is_staff": True}, format="json"
    )
    assert_outcome(response, role == "superuser", f"{role} creates a staff user")
    assert User.objects.filter(username="newstaff").exists() is (role == "superuser")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("target", TARGETS)
def test_user_edit_in_the_console(accounts, role, target):
    victim = accounts[target]
    assert victim is not None
    response = console_client(accounts[role]).get(f"/admin/accounts/user/{victim.pk}/change/")
    allowed = role == "superuser"  # only superusers edit people in the console
    if allowed:
        assert response.status_code == 200
        assert b'name="username"' in response.content
    else:
        assert response.status_code in (302, 403) or b'name="username"' not in response.content


@pytest.mark.parametrize("role", ROLES)
def test_role_edit_granting_manage_gateway(accounts, role):
    target = Role.objects.create(name="plain-role")
    response = api_client(accounts[role]).patch(
        f"/api/gateway/roles/{target.pk}/", {"permissions": ["manage:gateway"]}, format="json"
    )
    allowed = table(role, "change", "roles")
    assert_outcome(response, allowed, f"{role} grants manage:gateway to a role")
    assert target.permissions.filter(name="manage:gateway").exists() is allowed


@pytest.mark.parametrize("role", ROLES)
def test_role_edit_in_the_console(accounts, role):
    target = Role.objects.create(name="console-role")
    client = console_client(accounts[role])
    response = client.post(
        f"/admin/accounts/role/{target.pk}/change/",
        {
            "name": "console-role",
            "description": "",
            "permissions": [Permission.objects.get(name="manage:gateway").pk],
            "accounts_user_roles-TOTAL_FORMS": "0",
            "accounts_user_roles-INITIAL_FORMS": "0",
            "User_roles-TOTAL_FORMS": "0",
            "User_roles-INITIAL_FORMS": "0",
        },
    )
    allowed = role == "superuser"
    assert target.permissions.filter(name="manage:gateway").exists() is allowed, (
        f"{role}: {response.status_code}"
    )


def test_refusals_say_what_is_missing(accounts):
    operator = api_client(accounts["operator"])
    detail = operator.post("/api/gateway/roles/", {"name": "x"}, format="json").json()["detail"]
    assert "manage:gateway" in detail and "gateway-operator" in detail
    viewer = api_client(accounts["viewer"])
    detail = viewer.post("/api/gateway/services/", {}, format="json").json()["detail"]
    assert "gateway-viewer" in detail
    plain = api_client(accounts["plain"])
    detail = plain.get("/api/gateway/services/").json()["detail"]
    assert re.search(r"superuser account, a staff account with a console role", detail)


@pytest.mark.parametrize("role", ROLES)
def test_console_list_actions_need_the_change_right(accounts, role):
    from accounts.services import api_key_create

    key = api_key_create(
        client=ApiClient.objects.create(name="act-client"), name="k", expires_at=None
    )[0]
    console_client(accounts[role]).post(
        "/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [key.pk]}
    )
    key.refresh_from_db()
    revoked = key.revoked_at is not None
    assert revoked is (role == "superuser"), f"{role} revoked a key: {revoked}"

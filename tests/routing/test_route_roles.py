"""A route's roles must exist: the file or the database defines them, a route never creates one.

Its permissions, by contrast, are created when missing (a permission is only a name that a role
or a token's claims carry). A route names at most 100 of each.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Permission, Role
from routing.configfile.service import config_export, config_import
from routing.configfile.spec import MAX_ROUTE_NAMES
from routing.configfile.validate import ConfigInvalid
from routing.models import Route, Service

pytestmark = pytest.mark.django_db

SERVICE = "services:\n  - name: api\n    url: http://127.0.0.1:9\n"


def _route(roles: str, *, extra: str = "") -> str:
    return f"{SERVICE}routes:\n  - path: /a/**\n    service: api\n    roles: {roles}\n{extra}"


def _errors(text: str) -> list[tuple[str, int | None, int | None, str]]:
    with pytest.raises(ConfigInvalid) as invalid:
        config_import(text=text)
    return [(e.location, e.line, e.column, e.message) for e in invalid.value.errors]


def test_a_route_naming_an_undefined_role_is_refused_and_nothing_is_written():
    text = _route("[admn]", extra="roles:\n  - name: admin\n")
    [(location, line, column, message)] = _errors(text)
    assert (location, line, column) == ("routes[0].roles", 7, 13)
    assert message.startswith("role 'admn' is not defined; add it under roles:")
    assert not Role.objects.exists()
    assert not Route.objects.exists() and not Service.objects.exists()


def test_each_undefined_role_is_reported_once_at_its_own_place():
    text = _route("\n      - admin\n      - admn\n      - ops\n      - admn", extra="roles: []\n")
    Role.objects.create(name="admin")
    errors = _errors(text)
    assert [(e[0], e[1], e[2]) for e in errors] == [
        ("routes[0].roles", 9, 9),
        ("routes[0].roles", 10, 9),
    ]
    assert ["'admn'" in errors[0][3], "'ops'" in errors[1][3]] == [True, True]
    assert set(Role.objects.values_list("name", flat=True)) == {"admin"}


def test_a_role_in_the_database_but_not_in_the_file_is_accepted():
    admin = Role.objects.create(name="admin")
    config_import(text=_route("[admin]"))
    assert list(Route.objects.get().roles.all()) == [admin]
    # --prune deletes services and routes the file does not name, never roles.
    assert config_import(text=_route("[admin]"), prune=True).changes == []


def test_a_role_defined_in_the_file_is_accepted_and_reimport_and_round_trip_are_no_ops():
    text = _route('["admin", "developer"]', extra="roles:\n  - name: admin\n  - name: developer\n")
    result = config_import(text=text)
    assert result.applied
    route = Route.objects.get()
    assert sorted(route.roles.values_list("name", flat=True)) == ["admin", "developer"]
    assert config_import(text=text).changes == []
    exported = config_export()
    assert "roles:" in exported
    assert config_import(text=exported).changes == []
    assert config_import(text=exported, prune=True).changes == []


def test_a_role_whose_entry_has_an_error_is_reported_there_only():
    # The role is declared, so the route's reference is not a second error for one mistake.
    text = _route("[admin]", extra="roles:\n  - name: admin\n    permissions: [NOT VALID]\n")
    errors = _errors(text)
    assert [e[0] for e in errors] == ["roles[0].permissions"]


def test_a_route_role_that_is_not_a_valid_name_is_one_error_not_also_undefined():
    errors = _errors(_route('["Admin!"]'))
    assert [e[0] for e in errors] == ["routes[0].roles"]
    assert "is not a valid name" in errors[0][3]


def test_a_route_with_other_errors_still_reports_its_undefined_role():
    errors = _errors(_route("[admn]", extra="    timeout: soon\n"))
    assert [e[0] for e in errors] == ["routes[0].roles", "routes[0].timeout"]


def test_a_quota_still_cannot_create_its_role():
    errors = _errors(f"{SERVICE}quotas:\n  - role: admn\n    requests_per_day: 5\n")
    assert [e[0] for e in errors] == ["quotas[0].role"]
    assert not Role.objects.exists()


def test_permissions_a_route_names_are_created():
    # Documented: a permission is only a name; external JWTs may carry ones the database lacks.
    config_import(
        text=f"{SERVICE}routes:\n  - path: /a/**\n    service: api\n"
        "    permissions: [read:reports]\n"
    )
    assert Permission.objects.filter(name="read:reports").exists()
    assert not Role.objects.exists()


def test_the_command_exits_1_naming_the_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text(_route('["admn"]', extra="roles:\n  - name: admin\n"))
    stderr = io.StringIO()
    with pytest.raises(CommandError, match="1 error"):
        call_command("gateway", "import", str(bad), stderr=stderr, stdout=io.StringIO())
    assert f"{bad}: line 7, column 13: routes[0].roles: role 'admn' is not defined" in (
        stderr.getvalue()
    )
    assert not Role.objects.exists() and not Route.objects.exists()


def _names(prefix: str, count: int) -> str:
    return "[" + ", ".join(f"{prefix}{n}" for n in range(count)) + "]"


def test_a_route_may_name_at_most_100_roles_and_100_permissions():
    roles = "".join(f"  - name: r{n}\n" for n in range(MAX_ROUTE_NAMES + 1))
    at_limit = _route(
        _names("r", MAX_ROUTE_NAMES),
        extra=f"    permissions: {_names('read:p', MAX_ROUTE_NAMES)}\nroles:\n{roles}",
    )
    config_import(text=at_limit)
    route = Route.objects.get()
    assert (route.roles.count(), route.permissions.count()) == (100, 100)

    over = _route(
        _names("r", MAX_ROUTE_NAMES + 1),
        extra=f"    permissions: {_names('read:p', MAX_ROUTE_NAMES + 1)}\nroles:\n{roles}",
    )
    errors = _errors(over)
    assert [(e[0], e[1], e[3]) for e in errors] == [
        ("routes[0].roles", 7, "lists 101 names; at most 100 are allowed."),
        ("routes[0].permissions", 8, "lists 101 names; at most 100 are allowed."),
    ]
    assert route.roles.count() == 100  # unchanged


def test_a_huge_list_of_undefined_roles_is_one_error_and_creates_nothing():
    # A config bomb: the list's size is the error; its 20,000 names are never looked up.
    errors = _errors(_route(_names("ghost", 20_000)))
    assert [(e[0], e[3]) for e in errors] == [
        ("routes[0].roles", "lists 20000 names; at most 100 are allowed.")
    ]
    assert not Role.objects.exists()

"""`gateway import` reports every error of a file in one pass, each with its line, in line order."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import Role
from quotas.models import Quota
from routing.configfile.service import config_import
from routing.configfile.validate import NOTHING_DEFINED, ConfigInvalid
from routing.models import Route, Service

ROOT = Path(__file__).resolve().parents[2]

# Routes first and services last, so that the checker's section order is not the file's order.
# Every kind of error at once: structure, values, duplicate keys and references to the database.
SEVERAL_ERRORS = """\
# a file with an error of every kind
routes:
  - path: /a/**
    service: ghost
    timeout: soon
  - path: /b/**
    service: api
    roles: [developer, admn, old-role]
  - path: /c/**
    service: existing
  - path: no-slash
    service: phantom
    roles:
      - typo
quotas:
  - role: nobody
    requests_per_day: 5
  - role: developer
    requests_per_day: 5
  - role: old-role
    requests_per_day: 5
  - user: ghost-user
    requests_per_day: 0
roles:
  - name: developer
services:
  - name: api
    url: http://127.0.0.1:9
    colour: blue
    url: http://127.0.0.1:9
"""

# (line, location, the start of the message): what the report must say, in this order.
EXPECTED = [
    (4, "routes[0].service", "service 'ghost' is not defined; add it under services:"),
    (5, "routes[0].timeout", "'soon' is not a duration"),
    # A route's role defined neither in the file (developer is) nor in the database (old-role
    # is): a route never creates a role, so a typo would lock the route silently.
    (8, "routes[1].roles", "role 'admn' is not defined; add it under roles:"),
    (11, "routes[3].path", "must start with '/'"),
    (12, "routes[3].service", "service 'phantom' is not defined"),
    (14, "routes[3].roles", "role 'typo' is not defined"),
    (16, "quotas[0].role", "role 'nobody' is not defined; add it under roles:"),
    (22, "quotas[3].user", "no user named 'ghost-user'"),
    (23, "quotas[3].requests_per_day", "must be a whole number of at least 1"),
    (29, "services[0].colour", "unknown key 'colour'"),
    (30, "services[0].url", "'url' is given twice"),
]
_REPORTED = re.compile(r"^(?P<file>.+): line (?P<line>\d+)(?:, column \d+)?: (?P<loc>\S+): ")


@pytest.fixture
def live_config() -> None:
    """What the file may refer to without defining: a service and a role in the database."""
    Service.objects.create(name="existing", url="http://127.0.0.1:9")
    Role.objects.create(name="old-role")


def _snapshot() -> tuple[object, ...]:
    return (
        sorted(Service.objects.values_list("name", "url")),
        sorted(Route.objects.values_list("path", "methods")),
        sorted(Role.objects.values_list("name", flat=True)),
        Quota.objects.count(),
    )


def _assert_report(report: str, file_name: str) -> None:
    """Every expected error, each on its own line with its line number, in line order."""
    lines = [line for line in report.splitlines() if line.startswith(f"{file_name}: ")]
    assert len(lines) == len(EXPECTED), report
    for line, (number, location, message) in zip(lines, EXPECTED, strict=True):
        match = _REPORTED.match(line)
        assert match, line
        assert (int(match["line"]), match["loc"]) == (number, location), line
        assert message in line, line


@pytest.mark.django_db
def test_import_reports_every_error_in_one_pass_in_line_order(tmp_path, live_config):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SEVERAL_ERRORS)
    before = _snapshot()
    stderr = io.StringIO()
    with pytest.raises(CommandError, match=f"{len(EXPECTED)} error"):
        call_command("gateway", "import", str(bad), stderr=stderr, stdout=io.StringIO())
    _assert_report(stderr.getvalue(), str(bad))
    # References are placed at the name itself: line and column.
    assert f"{bad}: line 4, column 14: routes[0].service:" in stderr.getvalue()
    assert f"{bad}: line 8, column 24: routes[1].roles: role 'admn'" in stderr.getvalue()
    assert f"{bad}: line 14, column 9: routes[3].roles: role 'typo'" in stderr.getvalue()
    assert f"{bad}: line 16, column 11: quotas[0].role:" in stderr.getvalue()
    assert _snapshot() == before


@pytest.mark.django_db
def test_a_quota_for_an_undefined_role_is_refused_and_creates_no_role():
    text = "quotas:\n  - role: nobody\n    requests_per_day: 5\n"
    with pytest.raises(ConfigInvalid) as invalid:
        config_import(text=text)
    assert [(e.location, e.line) for e in invalid.value.errors] == [("quotas[0].role", 2)]
    assert not Role.objects.filter(name="nobody").exists()
    assert Quota.objects.count() == 0
    # Defined in the file or already in the database, the role is fine.
    config_import(text="roles:\n  - name: nobody\n" + text)
    assert Quota.objects.filter(role__name="nobody").count() == 1
    config_import(text=text.replace("5", "6"))
    assert Quota.objects.get().requests_per_day == 6


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text", ["", "# only a comment\n", "{}\n", "---\n", "servics:\n  - name: api\n"]
)
@pytest.mark.parametrize("prune", [False, True])
def test_a_file_that_defines_nothing_is_an_error_naming_the_fix(tmp_path, live_config, text, prune):
    empty = tmp_path / "empty.yaml"
    empty.write_text(text)
    stderr, stdout = io.StringIO(), io.StringIO()
    args = ["--prune"] if prune else []
    with pytest.raises(CommandError, match="nothing was changed"):
        call_command("gateway", "import", str(empty), *args, stderr=stderr, stdout=stdout)
    assert f"{empty}: (file): {NOTHING_DEFINED}" in stderr.getvalue()
    assert "No changes" not in stdout.getvalue()
    assert Service.objects.filter(name="existing").exists()  # --prune deleted nothing


@pytest.mark.django_db
def test_empty_sections_are_a_deliberate_file_not_an_empty_one():
    # What `gateway export` writes for an empty gateway: it must import as a no-op.
    assert config_import(text="services: []\nroutes: []\nroles: []\nquotas: []\n").changes == []


def _command(*args: str) -> subprocess.CompletedProcess[str]:
    """`manage.py gateway ...` in a child process, on the test database."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "test-import-report"),
    }
    return subprocess.run(
        [sys.executable, "manage.py", "gateway", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_1_with_the_whole_report_and_changes_nothing(tmp_path, live_config):
    if connection.vendor != "postgresql":
        pytest.skip("the child process needs the shared PostgreSQL test database")
    bad = tmp_path / "bad.yaml"
    bad.write_text(SEVERAL_ERRORS)
    before = _snapshot()
    result = _command("import", str(bad))
    assert result.returncode == 1, result.stderr
    _assert_report(result.stderr, str(bad))
    assert "Traceback" not in result.stderr
    assert _snapshot() == before
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    result = _command("import", str(empty))
    assert result.returncode == 1, result.stderr
    assert NOTHING_DEFINED in result.stderr
    assert result.stdout == ""

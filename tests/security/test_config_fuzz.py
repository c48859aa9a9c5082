"""Fuzz of config import: malformed YAML gives ConfigInvalid with errors and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Permission, Role
from quotas.models import Quota
from routing.configfile.service import config_import
from routing.configfile.validate import ConfigInvalid
from routing.models import Route, Service, Target

pytestmark = pytest.mark.django_db

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "gateway.example.yaml"
EXAMPLE_LINES = EXAMPLE.read_text().splitlines()

_HOSTILE_SCALARS = [
    "", "-1", "0", "null", "~", "[]", "{}", "[[[", "{a: [", "yes", "0x10", "1e999", ".nan",
    "10000000000000000000000", "'\\x00'", '"\\0"', "*alias", "&anchor x", "!!binary aGk=",
    "!!python/object/apply:os.system ['true']", "!!set {a, b}", "2026-01-01", "1s", "-5s",
    "http://169.254.169.254", "ftp://x", "/api/**/x", "/admin/**", "\u202e", "a" * 300, "%00",
]  # fmt: skip
_YAML_TOKENS = [
    "services:", "routes:", "roles:", "quotas:", "\n", "\n  - ", "  ", "- ", "name: ", "url: ",
    "path: ", "service: ", "methods: ", "timeout: ", "rate_limit: ", "targets: ", "permissions: ",
    "requests_per_day: ", "{", "}", "[", "]", ",", ":", "'", '"', "#", "&a ", "*a", "!!str ",
    "---\n", "...\n", "? ", "|\n", ">\n", "\t", *_HOSTILE_SCALARS,
]  # fmt: skip


@st.composite
def mutated_example(draw: st.DrawFn) -> str:
    """The example config with a few random line-level and value-level mutations."""
    lines = list(EXAMPLE_LINES)
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "value", "indent", "splice"]))
        line = lines[index]
        if kind == "delete":
            del lines[index]
        elif kind == "duplicate":
            lines.insert(index, line)
        elif kind == "value" and ":" in line:
            key = line.split(":", 1)[0]
            lines[index] = f"{key}: {draw(st.sampled_from(_HOSTILE_SCALARS))}"
        elif kind == "indent":
            lines[index] = draw(st.sampled_from(["", " ", "   ", "\t"])) + line.lstrip()
        else:
            cut = draw(st.integers(0, len(line)))
            lines[index] = line[:cut] + draw(st.text(max_size=8)) + line[cut:]
        if not lines:
            break
    return "\n".join(lines)


yamlish_text = st.one_of(
    st.lists(st.sampled_from(_YAML_TOKENS), max_size=40).map("".join),
    st.text(max_size=200),
    mutated_example(),
)


def _snapshot() -> tuple[object, ...]:
    return (
        sorted(Service.objects.values_list("name", "url")),
        sorted(Target.objects.values_list("url", "weight")),
        sorted(Route.objects.values_list("path", "timeout_ms")),
        sorted(Role.objects.values_list("name", flat=True)),
        Permission.objects.count(),
        Quota.objects.count(),
    )


def _import_checked(text: str) -> None:
    """Import `text`: a clean import, or ConfigInvalid with errors and nothing written."""
    with transaction.atomic():
        before = _snapshot()
        try:
            config_import(text=text)
        except ConfigInvalid as invalid:
            assert invalid.errors, "ConfigInvalid without any error"
            for error in invalid.errors:
                assert str(error)
            assert _snapshot() == before, "an invalid file changed the live config"
        transaction.set_rollback(True)  # every example starts from the same live config


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(yamlish_text)
def test_malformed_config_is_refused_cleanly_and_writes_nothing(text: str) -> None:
    _import_checked(text)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mutated_example())
def test_mutations_of_the_example_over_a_live_config_never_half_apply(text: str) -> None:
    config_import(text=EXAMPLE.read_text())
    _import_checked(text)

"""Config-document bombs: refused while reading, with the place, through every door.

The doors are the parser itself, `manage.py gateway import`, the management API's import and
the console's upload page. The bombs: YAML aliases (a few hundred bytes that expand into
gigabytes), nesting thousands of levels deep (a RecursionError in PyYAML's composer), and a
document over GATEWAY_MAX_CONFIG_SIZE. Each must be refused at once, never expanded, never a
traceback or a 500. Time bounds are generous on purpose (the contract says a second; an
unprotected parser takes more than 25 s on the alias bomb): a loaded machine must not fail them.
"""

from __future__ import annotations

import dataclasses
import time
import tracemalloc
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from routing.configfile.document import MAX_DEPTH
from routing.configfile.export import export_yaml
from routing.configfile.spec import ConfigSpec
from routing.configfile.validate import ConfigInvalid, ConfigTooLarge, parse_config
from routing.models import Route, Service

pytestmark = pytest.mark.django_db

# Generous: ten times the contract's second, for a machine shared with other test runs.
BOUND_SECONDS = 10.0
# Far below what an expanded alias bomb needs (hundreds of MB), far above a refusal's needs.
BOUND_BYTES = 32 * 1024 * 1024


def _laughs(levels: int) -> str:
    """The "billion laughs": each level lists the previous one nine times."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        refs = ",".join([f"*l{level - 1}"] * 9)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


ALIAS_BOMB = _laughs(10)  # 9**10 strings once expanded: about 3.5 billion
# An alias with no anchor before it, and a merge key: refused as aliases, not as unknown names.
BARE_ALIAS = "services:\n  - *base\n"
MERGE_KEY = (
    "services:\n  - &base {name: a, url: 'http://127.0.0.1:1'}\n  - <<: *base\n    name: b\n"
)
DEEP_FLOW = "[" * 5000 + "]" * 5000
DEEP_BLOCK = "".join(" " * depth + "a:\n" for depth in range(1000)) + " " * 1000 + "b\n"
DEEP_MIXED = "services: " + "[{a: " * 2500 + "1" + "}]" * 2500 + "\n"
NUL = "services:\n  - name: a\x00b\n"

BOMBS = {
    "alias-bomb": (ALIAS_BOMB, "anchors (&l0)", 1, 5),
    "bare-alias": (BARE_ALIAS, "aliases (*base)", 2, 5),
    "merge-key": (MERGE_KEY, "anchors (&base)", 2, 5),
    "deep-flow": (DEEP_FLOW, f"deeper than {MAX_DEPTH} levels", 1, MAX_DEPTH + 1),
    "deep-block": (DEEP_BLOCK, f"deeper than {MAX_DEPTH} levels", MAX_DEPTH + 1, MAX_DEPTH + 1),
    "deep-mixed": (DEEP_MIXED, f"deeper than {MAX_DEPTH} levels", 1, None),
    "nul": (NUL, "#x0000 is not allowed", 2, 12),
}


def _measured(call: Callable[[], Any], *, memory: bool = False) -> tuple[Any, float, int]:
    """Run `call`; its result or exception, the seconds it took and (if asked) its peak memory.

    Memory tracing slows allocation-heavy code many times over, so timing runs without it.
    """
    if memory:
        tracemalloc.start()
    started = time.monotonic()
    try:
        try:
            outcome: Any = call()
        except Exception as error:
            outcome = error
        peak = tracemalloc.get_traced_memory()[1] if memory else 0
        return outcome, time.monotonic() - started, peak
    finally:
        if memory:
            tracemalloc.stop()


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_superuser("bombs", password="long-test-password-1")


@pytest.fixture
def api(staff_user) -> APIClient:
    client = APIClient()
    client.force_login(staff_user)
    return client


@pytest.fixture
def console(client, staff_user):
    client.force_login(staff_user)
    return client


# --- the parser --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "fragment", "line", "column"), BOMBS.values(), ids=BOMBS.keys())
def test_the_parser_refuses_each_bomb_at_once_with_its_place(text, fragment, line, column):
    outcome, seconds, _ = _measured(lambda: parse_config(text))
    assert isinstance(outcome, ConfigInvalid), outcome
    (error,) = outcome.errors
    assert fragment in error.message
    assert error.line == line
    if column is not None:
        assert error.column == column
    assert seconds < BOUND_SECONDS, f"{seconds:.2f}s"
    _, _, peak = _measured(lambda: parse_config(text), memory=True)
    assert peak < BOUND_BYTES, f"{peak / 1e6:.0f} MB"


def test_the_alias_bomb_is_never_expanded():
    # The plain SafeLoader would build 3.5 billion strings; ours stops at the first anchor.
    outcome, _, peak = _measured(lambda: parse_config(ALIAS_BOMB), memory=True)
    assert isinstance(outcome, ConfigInvalid)
    assert peak < 1024 * 1024, f"{peak} bytes"


def test_nesting_up_to_the_limit_is_read_and_one_more_level_is_refused():
    def nested(levels: int) -> str:
        return "services: " + "[" * (levels - 1) + "]" * (levels - 1) + "\n"

    with pytest.raises(ConfigInvalid) as within:
        parse_config(nested(MAX_DEPTH))
    assert "deeper" not in str(within.value.errors)  # refused later, by the config's own rules
    with pytest.raises(ConfigInvalid) as beyond:
        parse_config(nested(MAX_DEPTH + 1))
    assert f"deeper than {MAX_DEPTH} levels" in beyond.value.errors[0].message


def test_a_document_over_the_size_limit_is_refused_unparsed(settings):
    settings.GATEWAY_MAX_CONFIG_SIZE = 1024
    text = "services: []\n" + "# padding\n" * 200  # valid YAML, but too large
    with pytest.raises(ConfigTooLarge) as caught:
        parse_config(text)
    (error,) = caught.value.errors
    assert "GATEWAY_MAX_CONFIG_SIZE (1024 bytes)" in error.message
    assert f"{len(text)} bytes" in error.message
    assert error.line == 103  # where byte 1024 falls
    assert parse_config("services: []\n" + "# padding\n" * 100) == ConfigSpec()


def test_the_size_limit_counts_bytes_not_characters(settings):
    settings.GATEWAY_MAX_CONFIG_SIZE = 1024
    text = "# " + "\u00e9" * 600 + "\n"  # 602 characters, 1203 bytes
    with pytest.raises(ConfigTooLarge):
        parse_config(text)


def test_the_default_limit_is_five_mebibytes(settings):
    from gateway_project.env import env_size

    assert env_size("GATEWAY_MAX_CONFIG_SIZE_UNSET_IN_TESTS", "5MiB") == 5 * 1024 * 1024
    assert settings.GATEWAY_MAX_CONFIG_SIZE == 5 * 1024 * 1024
    outcome, seconds, _ = _measured(lambda: parse_config("#" * (5 * 1024 * 1024 + 1)))
    assert isinstance(outcome, ConfigTooLarge)
    assert seconds < BOUND_SECONDS


def test_the_export_never_writes_an_alias_the_import_would_refuse():
    spec = parse_config(
        "services:\n- {name: a, url: 'http://127.0.0.1:1'}\nroutes:\n"
        "- {path: /a, service: a, methods: [GET, POST]}\n"
        "- {path: /b, service: a, methods: [GET, POST]}\n"
    )
    first, second = spec.routes.values()
    second_key = next(key for key, route in spec.routes.items() if route is second)
    # The same methods object in both routes: PyYAML would alias it.
    spec.routes[second_key] = dataclasses.replace(second, methods=first.methods)
    text = export_yaml(spec)
    assert "&id" not in text and "*id" not in text
    assert parse_config(text) == spec


# --- the command ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "fragment", "line", "_column"), BOMBS.values(), ids=BOMBS.keys())
def test_the_command_refuses_each_bomb_with_the_place_and_changes_nothing(
    tmp_path, text, fragment, line, _column
):
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    stderr = StringIO()
    outcome, seconds, _ = _measured(
        lambda: call_command("gateway", "import", str(path), "--dry-run", stderr=stderr)
    )
    assert isinstance(outcome, CommandError), outcome
    assert "nothing was changed" in str(outcome)
    assert f"line {line}" in stderr.getvalue() and fragment in stderr.getvalue()
    assert seconds < BOUND_SECONDS, f"{seconds:.2f}s"


def test_the_command_reads_no_more_than_the_limit_of_a_huge_file(tmp_path, settings):
    settings.GATEWAY_MAX_CONFIG_SIZE = 4096
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:  # sparse: 1 GiB on paper, nothing on disk
        handle.truncate(1024**3)
    stderr = StringIO()
    outcome, seconds, peak = _measured(
        lambda: call_command("gateway", "import", str(path), stderr=stderr), memory=True
    )
    assert isinstance(outcome, CommandError), outcome
    assert "too large" in str(outcome)
    assert f"{1024**3} bytes, more than GATEWAY_MAX_CONFIG_SIZE (4096 bytes)" in stderr.getvalue()
    assert peak < BOUND_BYTES and seconds < BOUND_SECONDS


def test_the_command_names_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"services: []\n# caf\xe9\n")
    with pytest.raises(CommandError, match=r"line 2: the file is not UTF-8 text"):
        call_command("gateway", "import", str(path))


# --- the management API --------------------------------------------------------------------

API_IMPORT = "/api/gateway/config/import/"


@pytest.mark.parametrize(
    ("text", "fragment", "line", "_column"),
    [v for k, v in BOMBS.items() if k != "nul"],
    ids=[k for k in BOMBS if k != "nul"],
)
def test_the_api_refuses_each_bomb_with_400_and_the_place(api, text, fragment, line, _column):
    outcome, seconds, _ = _measured(lambda: api.post(API_IMPORT, {"text": text}, format="json"))
    assert outcome.status_code == 400, outcome.content[:300]
    assert outcome["Content-Type"] == "application/problem+json"
    (error,) = outcome.json()["errors"]
    assert error["field"] == "non_field_errors"
    assert error["message"].startswith(f"line {line}, column ")
    assert fragment in error["message"]
    assert seconds < BOUND_SECONDS, f"{seconds:.2f}s"
    assert not Service.objects.exists()


def test_the_api_refuses_a_nul_with_a_clean_400(api):
    response = api.post(API_IMPORT, {"text": NUL}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "text"


def test_the_api_answers_413_for_a_document_over_the_limit(api, settings):
    settings.GATEWAY_MAX_CONFIG_SIZE = 4096
    text = "services: []\n" + "#" * 5000 + "\n"
    response = api.post(API_IMPORT, {"text": text, "dry_run": True}, format="json")
    assert response.status_code == 413, response.content[:300]
    problem = response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert problem["code"] == "config_too_large"
    assert "GATEWAY_MAX_CONFIG_SIZE (4096 bytes)" in problem["detail"]
    assert problem["detail"].startswith("line 2: ")  # where the limit is passed


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (0, "config_too_large"),
        (1024 * 1024, "payload_too_large"),
        (8 * 1024 * 1024, "payload_too_large"),
    ],
    ids=["5MiB", "6MiB", "13MiB"],
)
def test_the_api_answers_413_at_the_default_limit_never_500(api, extra, code):
    # Just over the limit the config check refuses it (naming GATEWAY_MAX_CONFIG_SIZE); far over,
    # the management API's body limit refuses the body before it is read whole.
    text = "services: []\n" + "#" * (5 * 1024 * 1024 + extra)
    response = api.post(API_IMPORT, {"text": text}, format="json")
    assert response.status_code == 413, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code


# --- the console ---------------------------------------------------------------------------

CONSOLE_IMPORT = "/admin/gateway/config/"


@pytest.mark.parametrize(("text", "fragment", "line", "_column"), BOMBS.values(), ids=BOMBS.keys())
def test_the_console_lists_each_bomb_as_an_error_with_the_place(
    console, text, fragment, line, _column
):
    upload = SimpleUploadedFile("bomb.yaml", text.encode())
    outcome, seconds, _ = _measured(
        lambda: console.post(CONSOLE_IMPORT, {"file": upload, "preview": "1"})
    )
    assert outcome.status_code == 200
    page = outcome.content.decode()
    assert 'id="config-errors"' in page and f"line {line}, column " in page
    assert fragment.replace("&", "&amp;") in page
    assert "Nothing was changed" in page
    assert seconds < BOUND_SECONDS, f"{seconds:.2f}s"


def test_the_console_refuses_an_upload_declared_over_the_limit_unread(console, settings):
    settings.GATEWAY_MAX_CONFIG_SIZE = 4096
    upload = SimpleUploadedFile("big.yaml", b"#" * (200 * 1024))  # past limit + form overhead
    response = console.post(CONSOLE_IMPORT, {"file": upload, "apply": "1"})
    assert response.status_code == 413
    assert "larger than GATEWAY_MAX_CONFIG_SIZE (4096 bytes)" in response.content.decode()
    assert not Route.objects.exists()


def test_the_console_stops_an_upload_at_the_first_byte_past_the_limit(console, settings):
    settings.GATEWAY_MAX_CONFIG_SIZE = 4096
    # Within the form's overhead, so only the upload handler's count can catch it.
    upload = SimpleUploadedFile("big.yaml", b"services: []\n" + b"#" * 4096)
    response = console.post(CONSOLE_IMPORT, {"file": upload, "apply": "1"})
    assert response.status_code == 413
    assert "larger than GATEWAY_MAX_CONFIG_SIZE" in response.content.decode()
    at_limit = SimpleUploadedFile("ok.yaml", b"services: []\n" + b"#" * (4096 - 14) + b"\n")
    assert console.post(CONSOLE_IMPORT, {"file": at_limit, "preview": "1"}).status_code == 200


def test_the_console_previews_and_applies_a_document_larger_than_djangos_default(console, upstream):
    # The preview carries the text to "apply" in a form field; Django's 2.5 MB default for
    # form fields must not refuse a document the config limit allows.
    text = f"services:\n- name: big\n  url: {upstream.url}\n" + "#" * (3 * 1024 * 1024) + "\n"
    preview = console.post(
        CONSOLE_IMPORT, {"file": SimpleUploadedFile("big.yaml", text.encode()), "preview": "1"}
    )
    assert "+ service big" in preview.content.decode()
    applied = console.post(CONSOLE_IMPORT, {"text": text, "apply": "1"})
    assert applied.status_code == 302
    assert Service.objects.filter(name="big").exists()


def test_yaml_module_still_expands_aliases_so_the_refusal_is_ours():
    # The control: PyYAML's own SafeLoader accepts aliases; only ConfigLoader refuses them.
    assert yaml.safe_load("a: &x [1]\nb: *x\n") == {"a": [1], "b": [1]}


def test_bomb_fixtures_are_small():
    # The point of a bomb: a few hundred bytes in, gigabytes out.
    assert len(ALIAS_BOMB) < 1024
    assert Path(__file__).stat().st_size < 64 * 1024

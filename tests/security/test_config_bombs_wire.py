"""Config bombs from outside the test process: real gunicorn for the console, a real process
for `manage.py gateway import` (its exit status and what it prints)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore

from tests.security.test_admin_plane import _collect_static
from tests.security.test_config_bombs import ALIAS_BOMB, BOUND_SECONDS, DEEP_FLOW, NUL
from tests.support.gateway_server import ROOT, GatewayServer, gateway_env

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def console(django_db_setup, django_db_blocker) -> Iterator[tuple[GatewayServer, str]]:
    """A gateway with a 64 KiB config limit and a staff session cookie for it."""
    _collect_static()  # the console's pages need the static manifest outside DEBUG
    with django_db_blocker.unblock():
        user = get_user_model().objects.create_superuser("wire-bombs", password="unused-pw-1234")
        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.create()
        try:
            with GatewayServer(GATEWAY_MAX_CONFIG_SIZE=str(LIMIT)) as server:
                yield server, f"sessionid={session.session_key}"
        finally:
            session.delete()
            user.delete()


def _read_answer(sock: socket.socket) -> bytes:
    """Read until the page is complete (the server may keep the connection open)."""
    data = b""
    while b"</html>" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_declared_50_mib_console_upload_is_refused_before_its_body_is_sent(console):
    server, cookie = console
    boundary = "bomb"
    preamble = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.yaml"\r\n'
        "Content-Type: application/yaml\r\n\r\n"
    ).encode()
    head = (
        "POST /admin/gateway/config/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Cookie: {cookie}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {50 * 1024 * 1024}\r\n\r\n"
    ).encode()
    # A server waiting for the 50 MiB that never come would never answer: the socket timeout
    # (BOUND_SECONDS per read) fails the test then. How fast the 413 comes is not measured.
    with socket.create_connection(("127.0.0.1", server.port), timeout=BOUND_SECONDS) as sock:
        # Only the head and the start of the body: an answer proves nothing waited for the rest.
        sock.sendall(head + preamble + b"#" * 1024)
        answer = _read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"larger than GATEWAY_MAX_CONFIG_SIZE (65536 bytes)" in answer


def _import_command(tmp_path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "manage.py", "gateway", "import", str(path), "--dry-run"],
        cwd=ROOT,
        env=gateway_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ALIAS_BOMB, "line 1, column 5: (file): YAML anchors (&l0) are not accepted"),
        (DEEP_FLOW, "line 1, column 51: (file): nesting is deeper than 50 levels"),
        (NUL, "line 2, column 12: (file): not valid YAML: #x0000 is not allowed"),
    ],
    ids=["alias-bomb", "deep-flow", "nul"],
)
def test_the_command_exits_1_with_the_place_and_no_traceback(tmp_path, text, expected):
    result = _import_command(tmp_path, text)
    assert result.returncode == 1, result.stderr[-2000:]
    assert expected in result.stderr
    assert "nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_the_command_exits_1_for_a_document_over_the_limit(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("#" * (LIMIT + 1))
    result = subprocess.run(
        [sys.executable, "manage.py", "gateway", "import", str(path)],
        cwd=ROOT,
        env=gateway_env(GATEWAY_MAX_CONFIG_SIZE="64KiB"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"{LIMIT + 1} bytes, more than GATEWAY_MAX_CONFIG_SIZE ({LIMIT} bytes)" in result.stderr
    assert "Traceback" not in result.stderr

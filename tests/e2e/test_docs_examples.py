"""docs/api.md's SDK example, run as written against a live gateway with a freshly generated SDK.

The SDK is generated into a temporary directory (as `make sdk` does into sdk/), the example is
extracted from the docs by scripts/docs_examples.py, and it runs as a user whose role holds
`manage:gateway` (what the docs' admin token can do, such a user can do too).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from accounts.models import Permission, Role, User
from routing.models import Route, Service
from scripts.docs_examples import python_blocks
from tests.support.gateway_server import ROOT, GatewayServer, gateway_env

PASSWORD = "docs-example-pw-1"  # a throw-away user of a test database
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def sdk_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workdir holding sdk/gateway_client generated from the gateway's schema."""
    work = tmp_path_factory.mktemp("docs-example")
    schema = work / "gateway-openapi.json"
    env = gateway_env()
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--format",
            "openapi-json",
            "--file",
            str(schema),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=180,
        capture_output=True,
    )
    subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(schema),
            "--meta",
            "none",
            "--output-path",
            str(work / "sdk" / "gateway_client"),
            "--config",
            str(ROOT / "config" / "openapi-python-client.yaml"),
        ],
        cwd=work,
        check=True,
        timeout=180,
        capture_output=True,
    )
    return work


@pytest.fixture
def gateway() -> Iterator[GatewayServer]:
    with GatewayServer() as server:
        yield server


def _manager() -> User:
    hasher = PBKDF2PasswordHasher()  # the server's hasher (few rounds), not the tests' fast one
    manager = User.objects.create(
        username="scripter", password=hasher.encode(PASSWORD, hasher.salt(), iterations=1000)
    )
    role = Role.objects.create(name="gateway-scripts")
    role.permissions.set([Permission.objects.get_or_create(name="manage:gateway")[0]])
    manager.roles.set([role])
    return manager


def test_the_sdk_example_of_the_api_docs_runs_against_a_live_gateway(sdk_dir, gateway, upstream):
    (example,) = python_blocks((ROOT / "docs" / "api.md").read_text())
    script = sdk_dir / "example.py"
    script.write_text(example)
    Service.objects.create(name="rd-service", url=upstream.url)
    _manager()

    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=sdk_dir,
        env={
            **os.environ,
            "GATEWAY_URL": gateway.url,
            "GATEWAY_USER": "scripter",
            "GATEWAY_PASSWORD": PASSWORD,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr + gateway.log()
    route = Route.objects.get(path="/api/v1/rd/**")
    assert route.service.name == "rd-service"
    assert f"created route {route.id} /api/v1/rd/**" in result.stdout
    assert f"{route.id} /api/v1/rd/** rd-service 30s" in result.stdout


def test_the_example_fails_loudly_without_the_right(sdk_dir, gateway, upstream):
    (example,) = python_blocks((ROOT / "docs" / "api.md").read_text())
    script = sdk_dir / "example.py"
    script.write_text(example)
    Service.objects.create(name="rd-service", url=upstream.url)
    hasher = PBKDF2PasswordHasher()
    password = hasher.encode(PASSWORD, hasher.salt(), iterations=1000)
    User.objects.create(username="nobody", password=password)

    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=sdk_dir,
        env={
            **os.environ,
            "GATEWAY_URL": gateway.url,
            "GATEWAY_USER": "nobody",
            "GATEWAY_PASSWORD": PASSWORD,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "not created" in result.stderr
    assert not Route.objects.filter(path="/api/v1/rd/**").exists()

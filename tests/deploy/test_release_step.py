"""The release step (compose's `migrate` service, the Kubernetes Job), run for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from accounts.models import User
from routing.models import Route, Service
from tests.support.gateway_server import ROOT, gateway_env

pytestmark = pytest.mark.django_db(transaction=True)


def _release(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    defaults = {"GATEWAY_CONFIG": str(ROOT / "config" / "compose.yaml")}
    environment = gateway_env(GATEWAY_VAR_DIR=str(tmp_path), **{**defaults, **env})
    environment.pop("SECRET_KEY")  # as in compose: the release step generates one
    # The virtualenv first on PATH, as the image's ENV PATH=/opt/venv/bin:$PATH.
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    return subprocess.run(
        ["python", "-m", "gateway_project.release"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_release_step_migrates_creates_the_admin_and_imports_the_config(tmp_path):
    first = _release(tmp_path, GATEWAY_ADMIN_USER="release-admin")
    assert first.returncode == 0, first.stdout + first.stderr
    secret_key = (tmp_path / "secret_key").read_text()
    assert len(secret_key) >= 50
    admin = User.objects.get(username="release-admin")
    assert admin.is_superuser
    assert "generated password" in first.stdout  # printed once, never a fixed default
    assert Service.objects.get(name="demo").url == "http://demo-upstream:8080"
    assert Route.objects.filter(path="/demo/**").count() == 1

    again = _release(tmp_path, GATEWAY_ADMIN_USER="release-admin")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "secret_key").read_text() == secret_key
    assert "generated password" not in again.stdout
    assert Route.objects.count() == 1


def test_release_step_stops_at_an_invalid_config_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - path: /x/**\n    service: nowhere\n")
    result = _release(tmp_path, GATEWAY_CONFIG=str(bad))
    assert result.returncode != 0
    assert "nowhere" in result.stdout + result.stderr
    assert not Route.objects.exists()

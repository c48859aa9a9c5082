"""Settings come from the environment; a wrong value stops the start with its name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Load the production settings in a fresh interpreter with `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "SECRET_KEY"))}
    clean.update(DJANGO_SETTINGS_MODULE="gateway_project.settings", GATEWAY_VAR_DIR=str(tmp_path))
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "name, value",
    [
        ("GATEWAY_MAX_BODY_SIZE", "lots"),
        ("GATEWAY_CONFIG_POLL", "often"),
        ("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("GATEWAY_UPSTREAM_POOL_SIZE", "zero"),
        ("DEBUG", "maybe"),
        ("LOG_LEVEL", "LOUD"),
        ("DATABASE_URL", "nosuchdb://x"),
    ],
)
def test_a_wrong_value_fails_the_start_naming_the_variable(tmp_path, name, value):
    result = _start(tmp_path, SECRET_KEY="k", **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr


def test_secret_key_is_required_outside_debug(tmp_path):
    result = _start(tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_secret_key_can_come_from_a_file(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("from-a-file\n")
    result = _start(tmp_path, SECRET_KEY_FILE=str(secret))
    assert result.stdout.strip() == "started", result.stderr


def test_generated_secret_key_under_var_is_used(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "gateway_project.bootstrap"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("SECRET_KEY")},
            "GATEWAY_VAR_DIR": str(tmp_path),
        },
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    result = _start(tmp_path)
    assert result.stdout.strip() == "started", result.stderr

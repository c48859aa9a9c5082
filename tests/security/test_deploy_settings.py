"""Production settings: `check --deploy` is clean; HSTS on the gateway's pages, never proxied."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from tests.support.gateway_server import ROOT


def test_check_deploy_is_clean_with_production_settings():
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GATEWAY_", "JWT_", "DJANGO_", "DEBUG", "ALLOWED_HOSTS"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="gateway_project.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="gateway.example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout


@pytest.mark.django_db
def test_hsts_is_sent_on_console_pages_over_https(client, settings):
    response = client.get("/admin/login/", secure=True)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


@pytest.mark.django_db
def test_proxied_answers_get_no_hsts_or_console_headers(client, make_route, upstream):
    make_route("/svc/**", upstream.url, authentication="none")
    response = client.get("/svc/echo", secure=True)
    assert response.status_code == 200
    for header in ("Strict-Transport-Security", "Content-Security-Policy", "Permissions-Policy"):
        assert header not in response

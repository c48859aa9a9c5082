"""REDIS_SENTINELS: django-redis's Sentinel client, configured from the environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _settings(**env: str) -> subprocess.CompletedProcess[str]:
    """Load the settings in a fresh interpreter with `env`, printing the cache OPTIONS."""
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.CACHES['default'].get('OPTIONS'))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("REDIS_")},
            "DJANGO_SETTINGS_MODULE": "gateway_project.settings",
            "SECRET_KEY": "settings-test",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_sentinels_switch_django_redis_to_its_sentinel_client():
    result = _settings(
        REDIS_URL="redis://mymaster/0", REDIS_SENTINELS="10.0.0.1:26379,[fd00::2]:26380"
    )
    assert result.returncode == 0, result.stderr
    assert "django_redis.client.SentinelClient" in result.stdout
    assert "django_redis.pool.SentinelConnectionFactory" in result.stdout
    assert "[('10.0.0.1', 26379), ('fd00::2', 26380)]" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"REDIS_URL": "redis://mymaster/0", "REDIS_SENTINELS": "a:26379,b"},
            "REDIS_SENTINELS: 'b' is not host:port.",
        ),
        ({"REDIS_SENTINELS": "a:26379"}, "REDIS_SENTINELS is set but REDIS_URL is not"),
    ],
)
def test_bad_sentinel_setting_stops_the_start_naming_the_variable(env, message):
    result = _settings(**env)
    assert result.returncode != 0
    assert message in result.stderr

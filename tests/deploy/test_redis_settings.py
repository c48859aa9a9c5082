"""REDIS_SENTINELS: django-redis's Sentinel client, configured from the environment."""

from __future__ import annotations

import runpy
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from .manifests import ROOT


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """The settings module evaluated afresh with `env` (the running Django is untouched)."""
    monkeypatch.setenv("SECRET_KEY", "settings-test")
    monkeypatch.setenv("DATABASE_URL", "postgres://gateway@db.example:5432/gateway")
    for name in ("REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gateway_project" / "settings.py"))


def test_sentinels_switch_django_redis_to_its_sentinel_client(monkeypatch):
    namespace = _settings(
        monkeypatch,
        REDIS_URL="redis://mymaster/0",
        REDIS_SENTINELS="10.0.0.1:26379,[fd00::2]:26380",
        REDIS_SENTINEL_PASSWORD="sentinel-pw",
    )
    cache = namespace["CACHES"]["default"]
    assert cache["LOCATION"] == "redis://mymaster/0"
    options = cache["OPTIONS"]
    assert options["CLIENT_CLASS"] == "django_redis.client.SentinelClient"
    assert options["CONNECTION_FACTORY"] == "django_redis.pool.SentinelConnectionFactory"
    assert options["SENTINELS"] == [("10.0.0.1", 26379), ("fd00::2", 26380)]
    assert options["SENTINEL_KWARGS"]["password"] == "sentinel-pw"
    # The sentinels get the same short timeouts as Redis itself.
    assert options["SENTINEL_KWARGS"]["socket_timeout"] == options["SOCKET_TIMEOUT"]


def test_without_sentinels_redis_is_reached_directly(monkeypatch):
    options = _settings(monkeypatch, REDIS_URL="redis://10.0.0.1:6379/0")["CACHES"]["default"][
        "OPTIONS"
    ]
    assert "CLIENT_CLASS" not in options and "SENTINELS" not in options


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
def test_bad_sentinel_setting_stops_the_start_naming_the_variable(monkeypatch, env, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        _settings(monkeypatch, **env)

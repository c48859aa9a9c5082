"""The end of a proxied request: reset_urlconf and a no-op close_caches skipped, nothing else."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import caches
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished
from django.db import close_old_connections
from django.urls import get_urlconf, set_urlconf

from gateway_project import request_end
from gateway_project.dispatch import ProxyWSGIHandler

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
REDIS = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/0"}


@pytest.fixture(autouse=True)
def installed() -> None:
    """The lean handler wraps the receivers when it is made (as wsgi.py makes it)."""
    ProxyWSGIHandler()


@pytest.fixture
def keep_test_connection():
    """Like Django's test client: the signal must not close the test's database connection."""
    request_finished.disconnect(close_old_connections)
    yield
    request_finished.connect(close_old_connections)


def _sync_receivers(sender: type) -> list[Any]:
    sync, _async = request_finished._live_receivers(sender)
    return list(sync)


@pytest.mark.usefixtures("keep_test_connection")
def test_the_lean_handler_leaves_a_urlconf_alone_and_every_other_sender_resets_it():
    set_urlconf("somewhere.urls")
    try:
        request_finished.send(sender=ProxyWSGIHandler)
        assert get_urlconf() == "somewhere.urls"
        request_finished.send(sender=WSGIHandler)
        assert get_urlconf() is None
    finally:
        set_urlconf(None)


@pytest.mark.usefixtures("keep_test_connection")
def test_caches_are_closed_for_every_sender_but_the_lean_handler(monkeypatch):
    closed: list[str] = []
    cache = caches["default"]  # this thread's instance, which close_caches() closes
    monkeypatch.setattr(cache, "close", lambda **kwargs: closed.append("closed"))
    request_finished.send(sender=ProxyWSGIHandler)
    assert closed == []
    request_finished.send(sender=WSGIHandler)
    assert closed == ["closed"]


@pytest.mark.usefixtures("keep_test_connection")
def test_a_cache_configured_to_close_per_request_is_closed_after_a_proxied_request(
    monkeypatch, settings
):
    settings.CACHES = {"default": {**REDIS, "OPTIONS": {"CLOSE_CONNECTION": True}}}
    closed: list[str] = []
    monkeypatch.setattr(caches["default"], "close", lambda **kwargs: closed.append("closed"))
    request_finished.send(sender=ProxyWSGIHandler)
    assert closed == ["closed"]


@pytest.mark.usefixtures("keep_test_connection")
def test_turning_django_redis_closing_on_alone_is_seen_at_once(monkeypatch, settings):
    settings.CACHES = {"default": REDIS}
    closed: list[str] = []
    monkeypatch.setattr(caches["default"], "close", lambda **kwargs: closed.append("closed"))
    request_finished.send(sender=ProxyWSGIHandler)
    assert closed == []
    settings.DJANGO_REDIS_CLOSE_CONNECTION = True
    request_finished.send(sender=ProxyWSGIHandler)
    assert closed == ["closed"]


def test_stale_database_connections_are_still_closed_after_a_proxied_request():
    assert close_old_connections in _sync_receivers(ProxyWSGIHandler)
    assert close_old_connections in _sync_receivers(WSGIHandler)


def test_installing_twice_wraps_once():
    before = _sync_receivers(WSGIHandler)
    request_end.skip_for(ProxyWSGIHandler)
    assert _sync_receivers(WSGIHandler) == before
    assert len(before) == len({receiver.__name__ for receiver in before})


@pytest.mark.parametrize(
    ("caches_setting", "close_nothing"),
    [
        ({"default": LOCMEM}, True),
        ({"default": REDIS}, True),
        ({"default": REDIS, "local": LOCMEM}, True),
        ({"default": {**REDIS, "OPTIONS": {"CLOSE_CONNECTION": True}}}, False),
        ({"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache"}}, False),
        (
            {"default": LOCMEM, "db": {"BACKEND": "django.core.cache.backends.db.DatabaseCache"}},
            False,
        ),
    ],
)
def test_which_caches_close_nothing_per_request(caches_setting, close_nothing):
    assert request_end.caches_close_nothing(caches_setting) is close_nothing


def test_django_redis_closing_by_setting_counts(settings):
    settings.DJANGO_REDIS_CLOSE_CONNECTION = True
    assert request_end.caches_close_nothing({"default": REDIS}) is False

"""The end of a proxied request: reset_urlconf, a no-op close_caches and close_old_connections on
a thread without a database connection skipped, nothing else."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import caches
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished
from django.db import OperationalError, close_old_connections, connections
from django.db.backends.postgresql.base import DatabaseWrapper
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


def _on_a_new_thread(work: Callable[[], Any]) -> Any:
    """What `work` returns, run on a thread of its own (whose connections it closes)."""
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(work())
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert results, "the thread's work failed"
    return results[0]


def _connect_past_max_age() -> Any:
    connection = connections["default"]
    connection.ensure_connection()
    connection.close_at = time.monotonic() - 1  # as if CONN_MAX_AGE had passed
    return connection


@pytest.mark.django_db(transaction=True)
def test_a_stale_database_connection_is_closed_after_a_proxied_request():
    def work() -> bool:
        connection = _connect_past_max_age()
        request_finished.send(sender=ProxyWSGIHandler)
        return connection.connection is None

    assert _on_a_new_thread(work) is True


@pytest.mark.django_db(transaction=True)
def test_a_connection_made_after_proxied_requests_without_one_is_still_closed():
    def work() -> tuple[bool, bool]:
        request_finished.send(sender=ProxyWSGIHandler)  # no connection yet: none to close
        request_finished.send(sender=ProxyWSGIHandler)
        connection = _connect_past_max_age()
        request_finished.send(sender=ProxyWSGIHandler)
        closed = connection.connection is None
        # Connected again (a later request): that is noticed as well.
        connection = _connect_past_max_age()
        request_finished.send(sender=ProxyWSGIHandler)
        return closed, connection.connection is None

    assert _on_a_new_thread(work) == (True, True)


@pytest.mark.skipif(
    connections["default"].vendor != "postgresql",
    reason="terminates a PostgreSQL session (CI has one)",
)
@pytest.mark.django_db(transaction=True)
def test_a_connection_broken_while_it_was_being_set_up_is_closed_after_a_proxied_request(
    monkeypatch,
):
    # Django stores a new connection before it configures it (SET TIME ZONE, SET ROLE) and
    # before connection_created; the server dropping the session in between leaves a dead
    # connection that only close_old_connections takes away.
    configure = DatabaseWrapper._configure_connection  # type: ignore[attr-defined]
    dropped: list[bool] = []

    def dropped_once(wrapper: Any, connection: Any) -> Any:
        if not dropped:
            dropped.append(True)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return configure(wrapper, connection)

    monkeypatch.setattr(DatabaseWrapper, "_configure_connection", dropped_once)

    def work() -> tuple[bool, list[int]]:
        request_finished.send(sender=ProxyWSGIHandler)  # a thread without a connection
        connection = connections["default"]
        with pytest.raises(OperationalError):
            connection.ensure_connection()
        kept = connection.connection is not None
        request_finished.send(sender=ProxyWSGIHandler)
        with connection.cursor() as cursor:  # a new connection, not the dead one
            cursor.execute("SELECT 1")
            return kept, list(cursor.fetchone())

    assert _on_a_new_thread(work) == (True, [1])
    assert dropped == [True]


def test_a_thread_without_a_database_connection_skips_the_check(monkeypatch):
    checks: list[object] = []
    monkeypatch.setattr(
        request_end, "close_old_connections", lambda **kwargs: checks.append(kwargs["sender"])
    )

    def work() -> None:
        for _ in range(3):
            request_finished.send(sender=ProxyWSGIHandler)
        request_finished.send(sender=WSGIHandler)
        request_finished.send(sender=WSGIHandler)

    _on_a_new_thread(work)
    assert checks == [WSGIHandler, WSGIHandler]  # the full handler always checks


def test_connections_stored_where_it_does_not_look_get_djangos_check(monkeypatch):
    # The check reads asgiref's storage of Django's connections directly; if asgiref stores them
    # elsewhere (a new version), Django's receiver runs for every request.
    checks: list[object] = []
    monkeypatch.setattr(
        request_end, "close_old_connections", lambda **kwargs: checks.append(kwargs["sender"])
    )
    monkeypatch.setattr(connections, "_connections", object())
    request_finished.send(sender=ProxyWSGIHandler)
    assert checks == [ProxyWSGIHandler]


@pytest.mark.django_db(transaction=True)
def test_the_check_reads_the_threads_own_connections():
    def work() -> list[bool]:
        seen = [request_end.may_hold_database_connection()]
        connection = connections["default"]
        seen.append(request_end.may_hold_database_connection())  # made, not connected
        connection.ensure_connection()
        seen.append(request_end.may_hold_database_connection())
        connection.close()
        seen.append(request_end.may_hold_database_connection())
        return seen

    assert _on_a_new_thread(work) == [False, False, True, False]


def test_disconnecting_close_old_connections_takes_out_the_wrapper_and_reconnecting_restores_it():
    # Django's test client does this around every response, so its database stays open.
    receivers = _sync_receivers(WSGIHandler)
    assert request_finished.disconnect(close_old_connections) is True
    try:
        left = _sync_receivers(WSGIHandler)
        assert len(left) == len(receivers) - 1
        assert close_old_connections not in left
        assert all(r.__name__ != "_close_old_connections_if_any" for r in left)
    finally:
        request_finished.connect(close_old_connections)
    restored = _sync_receivers(WSGIHandler)
    assert len(restored) == len(receivers)
    assert close_old_connections in restored


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

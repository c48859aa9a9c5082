"""The end of a proxied request without the Django receivers that have nothing to do there.

Every answer's close() sends Django's `request_finished`, whose receivers close stale database
connections (close_old_connections), close cache connections (close_caches) and undo a
thread's URLconf (reset_urlconf). For a request of the lean proxy handler
(gateway_project/dispatch.py) the last two never have anything to do, and the first nothing on
a thread that holds no open database connection, yet together they cost about 9% of the
request thread's instructions (bench/instructions.py):

- reset_urlconf undoes set_urlconf(), which only Django's full handler calls; asking asgiref's
  Local whether there is one raises and catches an AttributeError when there is none;
- close_caches closes connections that the gateway's cache backends never close per request
  (the in-process LocMemCache, and django-redis unless CLOSE_CONNECTION is set);
- close_old_connections closes a thread's database connections that are broken or past
  CONN_MAX_AGE. Finding out that a thread has none asks asgiref's Local, which raises and
  catches two exceptions per database alias, and proxied requests rarely touch the database
  (routes and identities are cached). The wrapper reads the thread's connections directly and
  runs it when any is open.

All three stay connected, through wrappers that skip them for the lean handler only; every
other sender (the full handler, the test client) gets Django's receivers as before, and so does
the lean handler when a configured cache does close per request, or on a thread that holds an
open database connection. Any receiver another app connects runs for every request.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from django.conf import settings
from django.core.cache import close_caches
from django.core.handlers.base import reset_urlconf
from django.core.signals import request_finished, setting_changed
from django.db import close_old_connections, connections

# Cache backends whose close() does nothing per request (django-redis: unless CLOSE_CONNECTION).
_LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
_DJANGO_REDIS = "django_redis.cache.RedisCache"


def caches_close_nothing(caches: dict[str, dict[str, Any]]) -> bool:
    """Whether close_caches() would close nothing for these CACHES settings."""
    for cache in caches.values():
        backend = cache.get("BACKEND")
        if backend == _LOCMEM:
            continue
        closes = cache.get("OPTIONS", {}).get(
            "CLOSE_CONNECTION", getattr(settings, "DJANGO_REDIS_CLOSE_CONNECTION", False)
        )
        if backend != _DJANGO_REDIS or closes:
            return False
    return True


# The lean handler's class (the sender of its requests' request_finished; there is one), once
# installed, and whether close_caches() closes nothing: read per request, recomputed when
# CACHES or DJANGO_REDIS_CLOSE_CONNECTION change.
_lean_sender: type | None = None
_caches_close_nothing = False


def _reset_urlconf_unless_proxied(sender: Any, **kwargs: Any) -> None:
    if sender is not _lean_sender:
        reset_urlconf(sender=sender, **kwargs)


def _close_caches_unless_proxied(sender: Any, **kwargs: Any) -> None:
    if sender is not _lean_sender or not _caches_close_nothing:
        close_caches(sender=sender, **kwargs)


# The key close_old_connections itself is connected under (Django's: the function's id), so
# that code disconnecting and reconnecting it around a response, as Django's test client does,
# takes out this wrapper and puts Django's receiver back instead of running both.
_CLOSE_OLD_CONNECTIONS_KEY = id(close_old_connections)


def _close_old_connections_if_any(sender: Any, **kwargs: Any) -> None:
    if sender is not _lean_sender or may_hold_database_connection():
        close_old_connections(sender=sender, **kwargs)


def may_hold_database_connection() -> bool:
    """Whether this thread may hold an open database connection, which close_old_connections
    would check: False only when none of its connection objects holds one.

    Read from asgiref's per-thread storage of Django's connections, a threading.local outside
    an event loop, without asking its Local (whose lookups raise and catch). Anything else
    than that answers True, so Django's receiver runs.
    """
    storage = getattr(getattr(connections, "_connections", None), "_storage", None)
    if type(storage) is not threading.local or asyncio._get_running_loop() is not None:
        return True
    return any(getattr(each, "connection", True) is not None for each in vars(storage).values())


def _cache_settings_changed(setting: str, **kwargs: Any) -> None:
    global _caches_close_nothing
    if setting in ("CACHES", "DJANGO_REDIS_CLOSE_CONNECTION"):
        _caches_close_nothing = caches_close_nothing(settings.CACHES)


def skip_for(lean_sender: type) -> None:
    """Make requests ended by `lean_sender` skip reset_urlconf, close_caches while the caches
    close nothing, and close_old_connections on a thread without an open database connection;
    every other sender runs all three. Idempotent."""
    global _lean_sender, _caches_close_nothing
    _lean_sender = lean_sender
    _caches_close_nothing = caches_close_nothing(settings.CACHES)
    for receiver, wrapper, uid in (
        (reset_urlconf, _reset_urlconf_unless_proxied, _reset_urlconf_unless_proxied.__name__),
        (close_caches, _close_caches_unless_proxied, _close_caches_unless_proxied.__name__),
        (close_old_connections, _close_old_connections_if_any, _CLOSE_OLD_CONNECTIONS_KEY),
    ):
        # Not connected (wrapped already, or disconnected on purpose, e.g. by a test): left so.
        if request_finished.disconnect(receiver):
            request_finished.connect(wrapper, dispatch_uid=uid)
    setting_changed.connect(_cache_settings_changed, dispatch_uid=_cache_settings_changed.__name__)

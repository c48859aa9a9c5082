"""The end of a proxied request without the two Django receivers that have nothing to do there.

Every answer's close() sends Django's `request_finished`, whose receivers close stale database
connections (close_old_connections), close cache connections (close_caches) and undo a
thread's URLconf (reset_urlconf). For a request of the lean proxy handler
(gateway_project/dispatch.py) the last two never have anything to do, yet cost about 6% of
the request thread's instructions (bench/instructions.py):

- reset_urlconf undoes set_urlconf(), which only Django's full handler calls; asking asgiref's
  Local whether there is one raises and catches an AttributeError when there is none;
- close_caches closes connections that the gateway's cache backends never close per request
  (the in-process LocMemCache, and django-redis unless CLOSE_CONNECTION is set).

Both stay connected, through wrappers that skip them for the lean handler only; every other
sender (the full handler, the test client) gets Django's receivers as before, and so does the
lean handler when a configured cache does close per request. close_old_connections and any
receiver another app connects run for every request.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import close_caches
from django.core.handlers.base import reset_urlconf
from django.core.signals import request_finished, setting_changed

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


def _cache_settings_changed(setting: str, **kwargs: Any) -> None:
    global _caches_close_nothing
    if setting in ("CACHES", "DJANGO_REDIS_CLOSE_CONNECTION"):
        _caches_close_nothing = caches_close_nothing(settings.CACHES)


def skip_for(lean_sender: type) -> None:
    """Make requests ended by `lean_sender` skip reset_urlconf, and close_caches while the
    caches close nothing; every other sender runs both. Idempotent."""
    global _lean_sender, _caches_close_nothing
    _lean_sender = lean_sender
    _caches_close_nothing = caches_close_nothing(settings.CACHES)
    for receiver, wrapper in (
        (reset_urlconf, _reset_urlconf_unless_proxied),
        (close_caches, _close_caches_unless_proxied),
    ):
        # Not connected (wrapped already, or disconnected on purpose, e.g. by a test): left so.
        if request_finished.disconnect(receiver):
            request_finished.connect(wrapper, dispatch_uid=wrapper.__name__)
    setting_changed.connect(_cache_settings_changed, dispatch_uid=_cache_settings_changed.__name__)

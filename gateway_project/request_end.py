"""The end of a proxied request without the two Django receivers that have nothing to do there.

Every answer's close() sends Django's `request_finished`, whose receivers close stale database
connections (close_old_connections), close cache connections (close_caches) and undo a
thread's URLconf (reset_urlconf). For a request of the lean proxy handler
(gateway_project/dispatch.py) the last two never have anything to do, yet cost about 5% of
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

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import close_caches
from django.core.handlers.base import reset_urlconf
from django.core.signals import request_finished

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


def skip_for(lean_sender: type) -> None:
    """Connect reset_urlconf (and close_caches, when it closes nothing) so that requests ended
    by `lean_sender` skip them. Idempotent."""
    skipped: list[Callable[..., None]] = [reset_urlconf]
    if caches_close_nothing(settings.CACHES):
        skipped.append(close_caches)
    for receiver in skipped:
        if not request_finished.disconnect(receiver):
            continue  # already wrapped (or disconnected on purpose, e.g. by a test)

        def unless_lean(sender: Any, _receiver: Any = receiver, **kwargs: Any) -> None:
            if sender is not lean_sender:
                _receiver(sender=sender, **kwargs)

        unless_lean.__name__ = f"{receiver.__name__}_unless_proxied"
        request_finished.connect(unless_lean, weak=False, dispatch_uid=unless_lean.__name__)

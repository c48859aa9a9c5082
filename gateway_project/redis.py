"""Access to the raw Redis client when REDIS_URL is configured."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings


def redis_configured() -> bool:
    """Whether the gateway runs with Redis (else counters and caches are in-process)."""
    return bool(settings.REDIS_URL)


@cache
def redis_client() -> Any:
    """The process's raw Redis client (shared connection pool), or None without Redis."""
    if not redis_configured():
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def redis_key(name: str) -> str:
    """A key in the gateway's Redis namespace."""
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or "gw"
    return f"{prefix}:{name}"

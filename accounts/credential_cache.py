"""A short-lived shared cache of API-key and OAuth2-token lookups, dropped on revocation."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache

from accounts.identity import Principal

logger = logging.getLogger("gateway.auth")

# A lookup that found nothing is remembered briefly, so a flood of bad keys stays off the DB.
NEGATIVE_TTL_SECONDS = 5
_INVALID = "invalid"


def api_key_cache_key(key_hash: str) -> str:
    """The cache key of an API key, by its stored hash."""
    return f"auth:apikey:{key_hash}"


def oauth_cache_key(token_checksum: str) -> str:
    """The cache key of an OAuth2 access token, by its stored checksum."""
    return f"auth:oauth:{token_checksum}"


class CachedLookup:
    """What a cache hit says: a principal (with its expiry and key id) or 'known invalid'."""

    __slots__ = ("expires_at", "invalid", "object_id", "principal")

    def __init__(
        self,
        principal: Principal | None,
        expires_at: float | None,
        object_id: int | None,
        invalid: bool = False,
    ) -> None:
        self.principal = principal
        self.expires_at = expires_at
        self.object_id = object_id
        self.invalid = invalid


def cache_get(key: str) -> CachedLookup | None:
    """The cached lookup, or None on a miss (or when the cache is unreachable)."""
    try:
        value: Any = cache.get(key)
    except Exception:  # a cache outage degrades to database lookups, never to a refusal
        logger.warning("credential cache unavailable; looking up in the database")
        return None
    if value is None:
        return None
    if value == _INVALID:
        return CachedLookup(None, None, None, invalid=True)
    data, expires_at, object_id = value
    return CachedLookup(Principal.from_tuple(data), expires_at, object_id)


def cache_principal(
    key: str, principal: Principal, *, expires_at: float | None, object_id: int
) -> None:
    """Remember a valid credential for the TTL (never past its own expiry)."""
    ttl = settings.GATEWAY_CREDENTIAL_CACHE_TTL_MS / 1000
    if expires_at is not None:
        ttl = min(ttl, expires_at - time.time())
    if ttl <= 0:
        return
    try:
        cache.set(key, (principal.as_tuple(), expires_at, object_id), timeout=ttl)
    except Exception:
        logger.warning("credential cache unavailable; lookup not cached")


def cache_invalid(key: str) -> None:
    """Remember briefly that a credential is unknown."""
    try:
        cache.set(key, _INVALID, timeout=NEGATIVE_TTL_SECONDS)
    except Exception:
        logger.warning("credential cache unavailable; lookup not cached")


def cache_drop(*keys: str) -> None:
    """Forget credentials at once (revocation, deactivation, role change)."""
    if not keys:
        return
    try:
        cache.delete_many(list(keys))
    except Exception:
        # Stale entries still expire within GATEWAY_CREDENTIAL_CACHE_TTL.
        logger.error("credential cache unavailable; revoked credentials live until their TTL")

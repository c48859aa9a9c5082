"""Where a JWKS document lives between fetches: Redis (shared by every worker and node), or memory.

One key holds the document with its fetch time, so every worker sees the same key set and a
key the issuer withdrew stops working everywhere once any worker refetched. A second key
(`SET NX PX`) is the deployment-wide refetch claim: at most one fetch per JWT_JWKS_MIN_REFETCH.
Without Redis (one worker process) the same happens in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from gateway_project.redis import redis_client, redis_key

logger = logging.getLogger("gateway.auth")


@dataclass(frozen=True, slots=True)
class StoredJwks:
    """A JWKS document and when (wall-clock seconds) it was fetched."""

    document: dict[str, Any]
    fetched_at: float


class _Memory:
    """The process-local store (no Redis), also the fallback while Redis fails."""

    def __init__(self) -> None:
        self.documents: dict[str, StoredJwks] = {}
        self.claims: dict[str, float] = {}  # url -> monotonic time the claim expires
        self.lock = threading.Lock()


_memory = _Memory()


def _names(url: str) -> tuple[str, str]:
    digest = hashlib.sha256(url.encode()).hexdigest()[:24]
    return redis_key(f"jwks:{digest}:doc"), redis_key(f"jwks:{digest}:refetch")


def jwks_read(url: str) -> StoredJwks | None:
    """The stored document for `url`, or None when nobody fetched it yet."""
    client = redis_client()
    if client is not None:
        try:
            raw = client.get(_names(url)[0])
        except Exception as error:  # any Redis failure: use this process's copy
            logger.warning(
                "JWKS store: Redis read failed (%s); using local copy", type(error).__name__
            )
        else:
            if raw is None:
                return None
            try:
                data = json.loads(raw)
                return StoredJwks(document=data["document"], fetched_at=float(data["fetched_at"]))
            except (ValueError, KeyError, TypeError):
                return None
    with _memory.lock:
        return _memory.documents.get(url)


def jwks_write(url: str, stored: StoredJwks) -> None:
    """Publish a freshly fetched document to every worker."""
    with _memory.lock:
        _memory.documents[url] = stored
    client = redis_client()
    if client is None:
        return
    payload = json.dumps({"document": stored.document, "fetched_at": stored.fetched_at})
    try:
        client.set(_names(url)[0], payload)
    except Exception as error:  # the fetching worker still has its copy
        logger.warning("JWKS store: Redis write failed (%s)", type(error).__name__)


def jwks_claim_refetch(url: str, *, min_refetch_seconds: float) -> bool:
    """True for exactly one caller per `min_refetch_seconds` in the whole deployment."""
    client = redis_client()
    if client is not None:
        try:
            ms = max(1, int(min_refetch_seconds * 1000))
            return bool(client.set(_names(url)[1], b"1", nx=True, px=ms))
        except Exception as error:  # fall back to a per-process claim
            logger.warning("JWKS store: Redis claim failed (%s)", type(error).__name__)
    now = time.monotonic()
    with _memory.lock:
        if _memory.claims.get(url, 0.0) > now:
            return False
        _memory.claims[url] = now + min_refetch_seconds
        return True


def jwks_forget(url: str) -> None:
    """Drop the stored document and refetch claim of `url` (tests, operators rotating by hand)."""
    with _memory.lock:
        _memory.documents.pop(url, None)
        _memory.claims.pop(url, None)
    client = redis_client()
    if client is not None:
        client.delete(*_names(url))

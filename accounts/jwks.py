"""An external issuer's signing keys, fetched from its JWKS URL, shared by all workers, refetched sparingly."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from accounts.jwks_store import StoredJwks, jwks_claim_refetch, jwks_read, jwks_write
from gateway_project.outbound_guard import guarded_session

logger = logging.getLogger("gateway.auth")

# A JWKS document is a few KiB; anything much larger is not one.
MAX_JWKS_BYTES = 256 * 1024
# Key types whose public half may sit in a JWKS; "oct" (a shared secret) never may.
_FAMILY_BY_KTY = {"RSA": ("RS", "PS"), "EC": ("ES",), "OKP": ("EdDSA",)}


class JwksUnavailable(Exception):
    """The JWKS document could not be fetched or parsed."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """One usable key from the set, with the algorithms it may verify."""

    kid: str
    key: Any
    algorithms: tuple[str, ...]


def _algorithms_for(jwk: dict[str, Any], allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The pinned algorithms this key may verify: its own `alg` if it names one, else its family."""
    families = _FAMILY_BY_KTY.get(str(jwk.get("kty")), ())
    candidates = [a for a in allowed if a.startswith(families)] if families else []
    declared = jwk.get("alg")
    if declared:
        return (declared,) if declared in candidates else ()
    return tuple(candidates)


def parse_jwks(document: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, VerificationKey]:
    """The signing keys of a JWKS document that the configured algorithms can use, by kid."""
    keys: dict[str, VerificationKey] = {}
    for jwk in document.get("keys", []):
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or not jwk.get("kid"):
            continue
        algorithms = _algorithms_for(jwk, allowed)
        if not algorithms:
            continue
        try:
            key = PyJWK(jwk, algorithm=algorithms[0]).key
        except PyJWKError:
            logger.warning("JWKS key %r is not usable; skipped", jwk.get("kid"))
            continue
        keys[str(jwk["kid"])] = VerificationKey(str(jwk["kid"]), key, algorithms)
    return keys


class JwksKeySet:
    """The keys at one JWKS URL, shared by every worker through the JWKS store (jwks_store.py).

    The document and its fetch time live in Redis; each worker re-reads them at most every
    `sync_seconds` (never more than `min_refetch`), so a key the issuer withdrew fails on
    every worker within that bound of any worker's refetch. An unknown `kid` or a document
    older than `max_age` triggers a refetch, at most one per `min_refetch` for the deployment.
    """

    def __init__(
        self,
        *,
        url: str,
        algorithms: tuple[str, ...],
        timeout_seconds: float,
        max_age_seconds: float,
        min_refetch_seconds: float,
    ) -> None:
        self.url = url
        self.algorithms = algorithms
        self.timeout_seconds = timeout_seconds
        self.max_age_seconds = max_age_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self.sync_seconds = min(1.0, min_refetch_seconds)
        self.fetch_count = 0
        self.generation = 0  # bumped whenever the keys change; verified-token caches compare it
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at: float | None = None  # wall-clock fetch time of the document in use
        self._synced_at = -math.inf  # monotonic time of the last look at the shared store
        self._tried_at = -math.inf  # monotonic time of this worker's last refetch attempt
        self._lock = threading.Lock()

    def sync(self) -> None:
        """Adopt the shared document if another worker fetched a newer one (rate-limited)."""
        if time.monotonic() - self._synced_at >= self.sync_seconds:
            self._load_shared()

    def key(self, kid: str) -> VerificationKey | None:
        """The key `kid`; an unknown kid or a stale set triggers a (deployment-wide limited) refetch."""
        self.sync()
        found = self._keys.get(kid)
        if found is not None and not self._stale():
            return found
        self._refetch_if_allowed(kid)
        return self._keys.get(kid)

    def _stale(self) -> bool:
        fetched = self._fetched_at
        return fetched is None or time.time() - fetched > self.max_age_seconds

    def _load_shared(self) -> None:
        self._synced_at = time.monotonic()
        stored = jwks_read(self.url)
        if stored is not None and stored.fetched_at != self._fetched_at:
            self._adopt(stored)

    def _adopt(self, stored: StoredJwks) -> None:
        self._keys = parse_jwks(stored.document, self.algorithms)
        self._fetched_at = stored.fetched_at
        self.generation += 1

    def _refetch_if_allowed(self, kid: str) -> None:
        # One thread fetches; the others use what is there rather than queue up behind it.
        if not self._lock.acquire(blocking=self._fetched_at is None):
            return
        try:
            # A flood of unknown kids costs each worker a store read a few times a second at most.
            if time.monotonic() - self._tried_at < min(0.25, self.min_refetch_seconds):
                return
            self._tried_at = time.monotonic()
            self._load_shared()  # another worker may have fetched it a moment ago
            if kid in self._keys and not self._stale():
                return
            if not jwks_claim_refetch(self.url, min_refetch_seconds=self.min_refetch_seconds):
                return  # an unknown kid must not let callers hammer the issuer
            try:
                document = self._fetch()
            except JwksUnavailable as error:
                logger.warning(
                    "JWKS fetch from %s failed: %s; keeping %d cached keys",
                    self.url,
                    error,
                    len(self._keys),
                )
                return
            stored = StoredJwks(document=document, fetched_at=time.time())
            jwks_write(self.url, stored)
            self._adopt(stored)
            logger.info("JWKS fetched from %s: %d usable keys", self.url, len(self._keys))
        finally:
            self._lock.release()

    def _fetch(self) -> dict[str, Any]:
        self.fetch_count += 1
        try:
            with guarded_session().get(  # the outbound address guard, like every fetch
                self.url,
                timeout=self.timeout_seconds,
                stream=True,
                headers={"Accept": "application/json"},
                allow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise JwksUnavailable(f"status {response.status_code}")
                body = b""
                for chunk in response.iter_content(16 * 1024):
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise JwksUnavailable(f"document larger than {MAX_JWKS_BYTES} bytes")
        except requests.RequestException as error:
            raise JwksUnavailable(type(error).__name__) from None
        try:
            document = json.loads(body)
        except ValueError:
            raise JwksUnavailable("not JSON") from None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise JwksUnavailable("no 'keys' list")
        return document

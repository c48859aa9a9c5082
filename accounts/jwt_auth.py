"""Stateless JWT verification for the proxy: pinned algorithms (RFC 8725), no database query."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from functools import cache
from typing import Any

import jwt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from jwt import exceptions as jwt_errors
from jwt.algorithms import get_default_algorithms

from accounts.errors import InvalidCredentials
from accounts.identity import Principal
from accounts.jwks import JwksKeySet
from accounts.jwt_settings import HMAC_ALGORITHMS

ACCESS = "access"  # the token_type claim of access tokens (refresh tokens say "refresh")
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt_errors.ExpiredSignatureError, "The token has expired."),
    (jwt_errors.ImmatureSignatureError, "The token is not valid yet."),
    (jwt_errors.InvalidAudienceError, "The token was issued for another audience."),
    (jwt_errors.InvalidIssuerError, "The token comes from an issuer this gateway does not trust."),
    (jwt_errors.InvalidAlgorithmError, "The token's signing algorithm is not accepted."),
    (jwt_errors.MissingRequiredClaimError, "The token lacks a required claim."),
    (jwt_errors.InvalidSignatureError, "The token's signature is invalid."),
)


def key_id(algorithm: str, verifying_key: str) -> str:
    """The `kid` the gateway puts in its own tokens: a fingerprint of its verifying key."""
    digest = hashlib.sha256(f"gateway-kid:{algorithm}:{verifying_key}".encode()).hexdigest()
    return f"gw-{digest[:16]}"


def local_verifying_material() -> tuple[str, str]:
    """(algorithm, key text) that verifies the gateway's own tokens."""
    algorithm: str = settings.JWT_ALGORITHM
    key = settings.JWT_SIGNING_KEY if algorithm in HMAC_ALGORITHMS else settings.JWT_PUBLIC_KEY
    if not key:
        raise ImproperlyConfigured(f"JWT_ALGORITHM={algorithm} has no verifying key configured.")
    return algorithm, str(key)


def _string_list(value: Any) -> frozenset[str]:
    """A claim holding names: a JSON list, or one space- or comma-separated string."""
    if isinstance(value, str):
        return frozenset(part for part in value.replace(",", " ").split() if part)
    if isinstance(value, list | tuple):
        return frozenset(item for item in value if isinstance(item, str) and item)
    return frozenset()


def _claim(claims: dict[str, Any], path: str) -> Any:
    """A claim by dotted path (`realm_access.roles`), None when absent."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class JwtVerifier:
    """Verifies bearer JWTs and remembers verified ones (bounded LRU, expiry still checked)."""

    def __init__(
        self,
        *,
        algorithm: str,
        verifying_key: str,
        issuer: str | None,
        audience: str | None,
        leeway_seconds: float,
        cache_size: int,
        jwks: JwksKeySet | None,
        roles_claim: str,
        permissions_claim: str,
    ) -> None:
        self.algorithm = algorithm
        self.local_kid = key_id(algorithm, verifying_key)
        # Parse the PEM once: PyJWT would otherwise re-load it on every verification.
        self._key = get_default_algorithms()[algorithm].prepare_key(verifying_key)
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway_seconds
        self.jwks = jwks
        self.roles_claim = roles_claim
        self.permissions_claim = permissions_claim
        self._cache_size = cache_size
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, token: str) -> Principal:
        """The principal of a valid access token; InvalidCredentials otherwise."""
        with self._lock:
            hit = self._cache.get(token)
            if hit is not None:
                self._cache.move_to_end(token)
        if hit is not None:
            principal, expires = hit
            if time.time() - self.leeway < expires:
                return principal
            with self._lock:
                self._cache.pop(token, None)
            raise InvalidCredentials("The token has expired.")
        principal, expires = self._verify_uncached(token)
        if self._cache_size:
            with self._lock:
                self._cache[token] = (principal, expires)
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return principal

    def clear(self) -> None:
        """Forget every verified token (tests, key changes)."""
        with self._lock:
            self._cache.clear()

    def _verify_uncached(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt_errors.InvalidTokenError:
            raise InvalidCredentials("The token is malformed.") from None
        kid = header.get("kid")
        external = kid is not None and kid != self.local_kid
        key: Any
        if not external:
            key, algorithms = self._key, [self.algorithm]
            required = ["exp", "iat", "sub", "jti", "token_type"]
        else:
            found = self.jwks.key(str(kid)) if self.jwks is not None else None
            if found is None:
                raise InvalidCredentials("The token is signed by a key this gateway does not know.")
            key, algorithms, required = found.key, list(found.algorithms), ["exp", "sub"]
        try:
            # The accepted algorithms come from configuration only, never from the header.
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": required, "verify_aud": self.audience is not None},
            )
        except jwt_errors.InvalidTokenError as error:
            raise InvalidCredentials(_reason(error)) from None
        token_type = claims.get("token_type")
        if token_type != ACCESS and (not external or token_type is not None):
            raise InvalidCredentials("Only access tokens are accepted here, not refresh tokens.")
        return self._principal(claims, external=external), float(claims["exp"])

    def _principal(self, claims: dict[str, Any], *, external: bool) -> Principal:
        sub = str(claims["sub"])
        if external:
            roles = _string_list(_claim(claims, self.roles_claim))
            permissions = _string_list(_claim(claims, self.permissions_claim))
            username = claims.get("name") or claims.get("preferred_username") or sub
        else:
            roles = _string_list(claims.get("roles"))
            permissions = _string_list(claims.get("permissions"))
            username = claims.get("name") or sub
        return Principal(
            id=sub,
            username=str(username),
            roles=roles,
            permissions=permissions,
            kind="user",
            credential="external_jwt" if external else "jwt",
        )


def _reason(error: Exception) -> str:
    for error_type, reason in _REASONS:
        if isinstance(error, error_type):
            return reason
    return "The token is malformed or its signature is invalid."


@cache
def jwt_verifier() -> JwtVerifier:
    """This process's verifier, built from settings (rebuilt when tests change them)."""
    algorithm, verifying_key = local_verifying_material()
    jwks = None
    if settings.JWT_JWKS_URL:
        jwks = JwksKeySet(
            url=settings.JWT_JWKS_URL,
            algorithms=tuple(settings.JWT_JWKS_ALGORITHMS),
            timeout_seconds=settings.JWT_JWKS_TIMEOUT_MS / 1000,
            max_age_seconds=settings.JWT_JWKS_CACHE_TTL_MS / 1000,
            min_refetch_seconds=settings.JWT_JWKS_MIN_REFETCH_MS / 1000,
        )
    return JwtVerifier(
        algorithm=algorithm,
        verifying_key=verifying_key,
        issuer=settings.JWT_ISSUER,
        audience=settings.JWT_AUDIENCE,
        leeway_seconds=settings.JWT_LEEWAY_MS / 1000,
        cache_size=settings.JWT_CACHE_SIZE,
        jwks=jwks,
        roles_claim=settings.JWT_ROLES_CLAIM,
        permissions_claim=settings.JWT_PERMISSIONS_CLAIM,
    )

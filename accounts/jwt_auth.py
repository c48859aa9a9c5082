"""Stateless JWT verification: the issuer picked by `iss`, pinned algorithms (RFC 8725), no DB query."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
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
from accounts.jwt_issuers import (
    ExternalIssuer,
    external_issuers,
    gateway_audience,
    gateway_issuer,
)
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
    """A claim by name (`https://acme.example/roles`) or dotted path (`realm_access.roles`)."""
    if path in claims:  # namespaced claims (Auth0) hold dots in their names
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


@dataclass(frozen=True, slots=True)
class _Trusted:
    """An external issuer as the verifier uses it: its settings plus its prepared keys."""

    spec: ExternalIssuer
    jwks: JwksKeySet | None
    static_key: Any  # the prepared public_key, when the issuer has no JWKS URL


class JwtVerifier:
    """Verifies bearer JWTs, picking the issuer by `iss`; remembers verified ones (bounded LRU)."""

    def __init__(
        self,
        *,
        algorithm: str,
        verifying_key: str,
        issuer: str | None,
        audience: str | None,
        leeway_seconds: float,
        cache_size: int,
        externals: list[ExternalIssuer] | None = None,
        jwks_timeout_seconds: float = 3.0,
        jwks_max_age_seconds: float = 600.0,
        jwks_min_refetch_seconds: float = 30.0,
    ) -> None:
        self.algorithm = algorithm
        self.local_kid = key_id(algorithm, verifying_key)
        # Parse the PEM once: PyJWT would otherwise re-load it on every verification.
        self._key = get_default_algorithms()[algorithm].prepare_key(verifying_key)
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway_seconds
        self._by_issuer: dict[str | None, _Trusted] = {}
        for spec in externals or []:
            jwks = None
            static_key = None
            if spec.jwks_url:
                jwks = JwksKeySet(
                    url=spec.jwks_url,
                    algorithms=spec.algorithms,
                    timeout_seconds=jwks_timeout_seconds,
                    max_age_seconds=jwks_max_age_seconds,
                    min_refetch_seconds=jwks_min_refetch_seconds,
                )
            else:
                static_key = get_default_algorithms()[spec.algorithms[0]].prepare_key(
                    str(spec.public_key)
                )
            self._by_issuer.setdefault(spec.issuer, _Trusted(spec, jwks, static_key))
        self._cache_size = cache_size
        # token -> (principal, exp, the key set it was verified with and that set's generation)
        self._cache: OrderedDict[str, tuple[Principal, float, JwksKeySet | None, int]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def verify(self, token: str) -> Principal:
        """The principal of a valid access token; InvalidCredentials otherwise."""
        with self._lock:
            hit = self._cache.get(token)
            if hit is not None:
                self._cache.move_to_end(token)
        if hit is not None:
            principal, expires, jwks, generation = hit
            if jwks is not None:
                jwks.sync()  # a refetch elsewhere may have withdrawn the key
            if jwks is None or jwks.generation == generation:
                if time.time() - self.leeway < expires:
                    return principal
                with self._lock:
                    self._cache.pop(token, None)
                raise InvalidCredentials("The token has expired.")
            with self._lock:
                self._cache.pop(token, None)
        principal, expires, jwks = self._verify_uncached(token)
        if self._cache_size:
            entry = (principal, expires, jwks, jwks.generation if jwks is not None else 0)
            with self._lock:
                self._cache[token] = entry
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return principal

    def clear(self) -> None:
        """Forget every verified token (tests, key changes)."""
        with self._lock:
            self._cache.clear()

    def _verify_uncached(self, token: str) -> tuple[Principal, float, JwksKeySet | None]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt_errors.InvalidTokenError:
            raise InvalidCredentials("The token is malformed.") from None
        kid = header.get("kid")
        iss = unverified.get("iss")
        if iss is not None and not isinstance(iss, str):
            raise InvalidCredentials("The token is malformed.")
        # The gateway's own tokens name its issuer; tokens issued before GATEWAY_JWT_ISSUER
        # existed carry no `iss` and are accepted only under the gateway's own key.
        own = iss == self.issuer or (iss is None and kid in (None, self.local_kid))
        if own:
            return self._verify_own(token, issued=iss is not None)
        trusted = self._by_issuer.get(iss) or self._by_issuer.get(None)
        if trusted is None:
            raise InvalidCredentials(_reason(jwt_errors.InvalidIssuerError()))
        return self._verify_external(token, trusted, kid)

    def _verify_own(self, token: str, *, issued: bool) -> tuple[Principal, float, None]:
        claims = self._decode(
            token,
            self._key,
            [self.algorithm],
            issuer=self.issuer if issued else None,
            audience=self.audience,
            required=["exp", "iat", "sub", "jti", "token_type"],
        )
        if claims.get("token_type") != ACCESS:
            raise InvalidCredentials("Only access tokens are accepted here, not refresh tokens.")
        return _own_principal(claims), float(claims["exp"]), None

    def _verify_external(
        self, token: str, trusted: _Trusted, kid: Any
    ) -> tuple[Principal, float, JwksKeySet | None]:
        spec = trusted.spec
        key: Any
        if trusted.jwks is not None:
            found = trusted.jwks.key(str(kid)) if kid is not None else None
            if found is None:
                raise InvalidCredentials("The token is signed by a key this gateway does not know.")
            key, algorithms = found.key, list(found.algorithms)
        else:
            key, algorithms = trusted.static_key, list(spec.algorithms)
        claims = self._decode(
            token,
            key,
            algorithms,
            issuer=spec.issuer,
            audience=spec.audience,
            required=["exp", "sub"],
        )
        if claims.get("token_type", ACCESS) != ACCESS:
            raise InvalidCredentials("Only access tokens are accepted here, not refresh tokens.")
        return _external_principal(claims, spec), float(claims["exp"]), trusted.jwks

    def _decode(
        self,
        token: str,
        key: Any,
        algorithms: list[str],
        *,
        issuer: str | None,
        audience: str | None,
        required: list[str],
    ) -> dict[str, Any]:
        try:
            # The accepted algorithms come from configuration only, never from the header.
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=audience,
                issuer=issuer,
                leeway=self.leeway,
                options={"require": required, "verify_aud": audience is not None},
            )
        except jwt_errors.InvalidTokenError as error:
            raise InvalidCredentials(_reason(error)) from None
        return claims


def _own_principal(claims: dict[str, Any]) -> Principal:
    sub = str(claims["sub"])
    return Principal(
        id=sub,
        username=str(claims.get("name") or sub),
        roles=_string_list(claims.get("roles")),
        permissions=_string_list(claims.get("permissions")),
        kind="user",
        credential="jwt",
    )


def _external_principal(claims: dict[str, Any], spec: ExternalIssuer) -> Principal:
    sub = str(claims["sub"])
    username = _claim(claims, spec.name_claim) or claims.get("name") or sub
    return Principal(
        id=sub,
        username=str(username),
        roles=_string_list(_claim(claims, spec.roles_claim)),
        permissions=_string_list(_claim(claims, spec.permissions_claim)),
        kind="user",
        credential="external_jwt",
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
    return JwtVerifier(
        algorithm=algorithm,
        verifying_key=verifying_key,
        issuer=gateway_issuer(),
        audience=gateway_audience(),
        leeway_seconds=settings.JWT_LEEWAY_MS / 1000,
        cache_size=settings.JWT_CACHE_SIZE,
        externals=external_issuers(),
        jwks_timeout_seconds=settings.JWT_JWKS_TIMEOUT_MS / 1000,
        jwks_max_age_seconds=settings.JWT_JWKS_CACHE_TTL_MS / 1000,
        jwks_min_refetch_seconds=settings.JWT_JWKS_MIN_REFETCH_MS / 1000,
    )

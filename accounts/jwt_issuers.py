"""Who may issue the JWTs the gateway accepts: the gateway itself, and configured external issuers.

The gateway's own tokens carry `iss` = `gateway_issuer()`; an external issuer's tokens carry its
own `iss`, and the verifier picks the issuer (keys, audience, claim mapping) by that claim.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from jwt.algorithms import get_default_algorithms

from accounts.jwt_settings import asymmetric_algorithm

EXTERNAL_ISSUERS_SETTING = "GATEWAY_JWT_EXTERNAL_ISSUERS"
_ENTRY_FIELDS = frozenset(
    {
        "issuer",
        "audience",
        "jwks_url",
        "public_key",
        "algorithms",
        "roles_claim",
        "permissions_claim",
        "name_claim",
    }
)


@dataclass(frozen=True, slots=True)
class ExternalIssuer:
    """One trusted external identity provider: its `iss`, audience, keys and claim mapping."""

    issuer: str | None  # None only for the legacy JWT_JWKS_URL without JWT_ISSUER
    audience: str | None
    jwks_url: str | None
    public_key: str | None
    algorithms: tuple[str, ...]
    roles_claim: str = "roles"
    permissions_claim: str = "permissions"
    name_claim: str = "preferred_username"


def derived_gateway_issuer(secret_key: str) -> str:
    """The default `iss` of the gateway's own tokens: fixed per deployment (same SECRET_KEY)."""
    digest = hmac.new(secret_key.encode(), b"gateway-jwt-issuer", hashlib.sha256).hexdigest()
    return f"urn:api-gateway:{digest[:20]}"


def gateway_issuer() -> str:
    """The `iss` the gateway stamps on (and requires in) its own tokens.

    GATEWAY_JWT_ISSUER when set. Otherwise, for backward compatibility, JWT_ISSUER when no
    JWT_JWKS_URL is configured (JWT_ISSUER then always meant the gateway's own issuer); else a
    value derived from SECRET_KEY, the same on every node of the deployment.
    """
    configured: str | None = settings.GATEWAY_JWT_ISSUER
    if configured:
        return configured
    if settings.JWT_ISSUER and not settings.JWT_JWKS_URL:
        return str(settings.JWT_ISSUER)
    return derived_gateway_issuer(settings.SECRET_KEY)


def gateway_audience() -> str | None:
    """The `aud` of the gateway's own tokens (GATEWAY_JWT_AUDIENCE, legacy JWT_AUDIENCE), if any."""
    configured: str | None = settings.GATEWAY_JWT_AUDIENCE
    if configured:
        return configured
    if settings.JWT_AUDIENCE and not settings.JWT_JWKS_URL:
        return str(settings.JWT_AUDIENCE)
    return None


def external_issuers() -> list[ExternalIssuer]:
    """GATEWAY_JWT_EXTERNAL_ISSUERS, plus the legacy JWT_JWKS_URL/JWT_ISSUER/JWT_AUDIENCE one."""
    issuers = list(settings.GATEWAY_JWT_EXTERNAL_ISSUERS)
    if settings.JWT_JWKS_URL:
        issuers.append(
            ExternalIssuer(
                issuer=settings.JWT_ISSUER,
                audience=settings.JWT_AUDIENCE,
                jwks_url=settings.JWT_JWKS_URL,
                public_key=None,
                algorithms=tuple(settings.JWT_JWKS_ALGORITHMS),
                roles_claim=settings.JWT_ROLES_CLAIM,
                permissions_claim=settings.JWT_PERMISSIONS_CLAIM,
            )
        )
    return issuers


def parse_external_issuers(
    raw: str | None, *, default_algorithms: tuple[str, ...], gateway_iss: str | None
) -> list[ExternalIssuer]:
    """GATEWAY_JWT_EXTERNAL_ISSUERS (a JSON list); ImproperlyConfigured names the bad entry."""
    if not raw or not raw.strip():
        return []
    try:
        entries = json.loads(raw)
    except ValueError as error:
        raise ImproperlyConfigured(
            f"{EXTERNAL_ISSUERS_SETTING} is not valid JSON ({error.args[0]}); expected a list of "
            '{"issuer": ..., "jwks_url": ...} objects.'
        ) from None
    if not isinstance(entries, list):
        raise ImproperlyConfigured(f"{EXTERNAL_ISSUERS_SETTING} must be a JSON list of objects.")
    issuers: list[ExternalIssuer] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        issuer = _entry(entry, f"{EXTERNAL_ISSUERS_SETTING}[{index}]", default_algorithms)
        assert issuer.issuer is not None  # _entry requires it
        if issuer.issuer in seen or issuer.issuer == gateway_iss:
            raise ImproperlyConfigured(
                f"{EXTERNAL_ISSUERS_SETTING}[{index}].issuer {issuer.issuer!r} is listed twice "
                "or is the gateway's own issuer (GATEWAY_JWT_ISSUER); each `iss` has one owner."
            )
        seen.add(issuer.issuer)
        issuers.append(issuer)
    return issuers


def _entry(entry: Any, where: str, default_algorithms: tuple[str, ...]) -> ExternalIssuer:
    if not isinstance(entry, dict):
        raise ImproperlyConfigured(f"{where} must be an object.")
    unknown = sorted(set(entry) - _ENTRY_FIELDS)
    if unknown:
        raise ImproperlyConfigured(
            f"{where} has unknown field(s) {', '.join(unknown)}; known: "
            f"{', '.join(sorted(_ENTRY_FIELDS))}."
        )
    for name in _ENTRY_FIELDS - {"algorithms"}:
        value = entry.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ImproperlyConfigured(f"{where}.{name} must be a non-empty string.")
    if not entry.get("issuer"):
        raise ImproperlyConfigured(f"{where}.issuer is required (the `iss` its tokens carry).")
    if bool(entry.get("jwks_url")) == bool(entry.get("public_key")):
        raise ImproperlyConfigured(f"{where} needs exactly one of jwks_url or public_key.")
    if entry.get("jwks_url") and not str(entry["jwks_url"]).startswith(("https://", "http://")):
        raise ImproperlyConfigured(f"{where}.jwks_url must be an http(s) URL.")
    algorithms = entry.get("algorithms", list(default_algorithms))
    if not isinstance(algorithms, list) or not algorithms:
        raise ImproperlyConfigured(f"{where}.algorithms must be a non-empty list, e.g. ['RS256'].")
    pinned = tuple(asymmetric_algorithm(str(a), setting=f"{where}.algorithms") for a in algorithms)
    if entry.get("public_key"):
        try:
            get_default_algorithms()[pinned[0]].prepare_key(entry["public_key"])
        except Exception:  # any parse failure means the same to the operator
            raise ImproperlyConfigured(
                f"{where}.public_key is not a PEM public key for {pinned[0]}."
            ) from None
    return ExternalIssuer(
        issuer=entry["issuer"],
        audience=entry.get("audience"),
        jwks_url=entry.get("jwks_url"),
        public_key=entry.get("public_key"),
        algorithms=pinned,
        roles_claim=entry.get("roles_claim") or "roles",
        permissions_claim=entry.get("permissions_claim") or "permissions",
        name_claim=entry.get("name_claim") or "preferred_username",
    )

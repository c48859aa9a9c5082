"""JWT key settings from the environment, checked once at start-up (imported by settings.py)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

from gateway_project.env import env_list, env_secret, env_str

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
ALGORITHMS = HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS
# Shorter HMAC secrets can be brute-forced offline from any token (RFC 7518 section 3.2).
MIN_HMAC_KEY_BYTES = 32


@dataclass(frozen=True)
class JwtKeySettings:
    """The algorithm and keys the gateway signs and verifies its own tokens with."""

    algorithm: str
    signing_key: str | None
    signing_key_derived: bool
    private_key: str | None
    public_key: str | None
    jwks_algorithms: tuple[str, ...]


def derived_signing_key(secret_key: str) -> str:
    """An HMAC key derived from SECRET_KEY, used when JWT_SIGNING_KEY is not set."""
    return hmac.new(secret_key.encode(), b"gateway-jwt-signing-key", hashlib.sha256).hexdigest()


def _algorithm(name: str, default: str) -> str:
    raw = (env_str(name, default) or default).strip()
    # Accept any case ("hs256"), but store the registered spelling.
    by_upper = {algorithm.upper(): algorithm for algorithm in ALGORITHMS}
    algorithm = by_upper.get(raw.upper())
    if algorithm is None:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a supported algorithm; use one of "
            f"{', '.join(sorted(ALGORITHMS))}. 'none' is never accepted."
        )
    return algorithm


def _public_key_from_private(private_key: str) -> str:
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(private_key.encode(), password=None)
    except (ValueError, TypeError) as error:
        raise ImproperlyConfigured(f"JWT_PRIVATE_KEY is not a PEM private key ({error}).") from None
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def jwt_settings_from_env(*, secret_key: str) -> JwtKeySettings:
    """Read JWT_ALGORITHM and the key settings; ImproperlyConfigured names a bad one."""
    algorithm = _algorithm("JWT_ALGORITHM", "HS256")
    jwks_algorithms = tuple(
        asymmetric_algorithm(item, setting="JWT_JWKS_ALGORITHMS")
        for item in env_list("JWT_JWKS_ALGORITHMS", ["RS256"])
    )
    signing_key = env_secret("JWT_SIGNING_KEY")
    private_key = env_secret("JWT_PRIVATE_KEY")
    public_key = env_secret("JWT_PUBLIC_KEY")
    derived = False
    if algorithm in HMAC_ALGORITHMS:
        if private_key or public_key:
            raise ImproperlyConfigured(
                f"JWT_ALGORITHM={algorithm} uses JWT_SIGNING_KEY; JWT_PRIVATE_KEY/JWT_PUBLIC_KEY "
                "are for RS/PS/ES/EdDSA algorithms."
            )
        if not signing_key:
            signing_key, derived = derived_signing_key(secret_key), True
        elif len(signing_key.encode()) < MIN_HMAC_KEY_BYTES:
            raise ImproperlyConfigured(
                f"JWT_SIGNING_KEY must be at least {MIN_HMAC_KEY_BYTES} bytes for {algorithm}."
            )
    else:
        if signing_key:
            raise ImproperlyConfigured(
                f"JWT_SIGNING_KEY is an HMAC secret; JWT_ALGORITHM={algorithm} needs "
                "JWT_PRIVATE_KEY (to issue) and/or JWT_PUBLIC_KEY (to verify)."
            )
        if private_key and not public_key:
            public_key = _public_key_from_private(private_key)
        if not public_key:
            raise ImproperlyConfigured(
                f"JWT_ALGORITHM={algorithm} needs JWT_PUBLIC_KEY or JWT_PRIVATE_KEY "
                "(or their _FILE variants)."
            )
    return JwtKeySettings(
        algorithm=algorithm,
        signing_key=signing_key,
        signing_key_derived=derived,
        private_key=private_key,
        public_key=public_key,
        jwks_algorithms=jwks_algorithms,
    )


def asymmetric_algorithm(raw: str, *, setting: str) -> str:
    """The registered spelling of an RS/PS/ES/EdDSA algorithm; ImproperlyConfigured names `setting`."""
    by_upper = {algorithm.upper(): algorithm for algorithm in ASYMMETRIC_ALGORITHMS}
    algorithm = by_upper.get(raw.strip().upper())
    if algorithm is None:
        raise ImproperlyConfigured(
            f"{setting}: {raw!r} is not an asymmetric algorithm; use e.g. RS256, ES256."
        )
    return algorithm

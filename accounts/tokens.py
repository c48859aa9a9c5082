"""The gateway's own JWTs (simplejwt), signed with the configured algorithm and a `kid` header."""

from __future__ import annotations

import copy
from datetime import timedelta
from functools import cache
from typing import Any

import jwt
from django.conf import settings
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.jwt_auth import key_id, local_verifying_material
from accounts.jwt_issuers import gateway_audience, gateway_issuer


class SigningKeyMissing(Exception):
    """RS/ES/PS/EdDSA configured with only a public key: this gateway verifies but cannot issue."""


class GatewayTokenBackend(TokenBackend):
    """simplejwt's backend, plus `kid` and `typ` headers so verifiers can pick the key."""

    def __init__(self, *args: Any, kid: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kid = kid

    def encode(self, payload: dict[str, Any]) -> str:
        """Sign `payload` with the configured algorithm and key."""
        if not self.signing_key:
            raise SigningKeyMissing("JWT_PRIVATE_KEY is not set; this gateway cannot issue tokens.")
        claims = dict(payload)
        if self.audience is not None:
            claims["aud"] = self.audience
        if self.issuer is not None:
            claims["iss"] = self.issuer
        return jwt.encode(
            claims,
            self.prepared_signing_key,
            algorithm=self.algorithm,
            headers={"kid": self.kid, "typ": "JWT"},
        )

    def decode(self, token: Any, verify: bool = True) -> dict[str, Any]:
        """Verify a token; one issued before the gateway had an issuer (no `iss`) still counts."""
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            unverified = {}
        if self.issuer is not None and "iss" not in unverified:
            legacy = copy.copy(self)
            legacy.issuer = None  # still our key and algorithm: only the missing claim is excused
            return TokenBackend.decode(legacy, token, verify)
        return super().decode(token, verify)


@cache
def token_backend() -> GatewayTokenBackend:
    """This process's signing backend, from settings (rebuilt when tests change them)."""
    algorithm, verifying_key = local_verifying_material()
    return GatewayTokenBackend(
        algorithm,
        settings.JWT_SIGNING_KEY or settings.JWT_PRIVATE_KEY or "",
        settings.JWT_PUBLIC_KEY or "",
        gateway_audience(),
        gateway_issuer(),  # never an external issuer's: the verifier tells them apart by `iss`
        None,
        timedelta(milliseconds=settings.JWT_LEEWAY_MS),
        kid=key_id(algorithm, verifying_key),
    )


class GatewayAccessToken(AccessToken):
    """A short-lived access token (JWT_ACCESS_TOKEN_LIFETIME)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Read at issue time, so a settings change applies without re-importing the class.
        self.lifetime = timedelta(milliseconds=settings.JWT_ACCESS_TOKEN_LIFETIME_MS)
        super().__init__(*args, **kwargs)

    def get_token_backend(self) -> TokenBackend:
        """The gateway's backend (configured algorithm, `kid` header)."""
        return token_backend()


class GatewayRefreshToken(RefreshToken):
    """A refresh token (JWT_REFRESH_TOKEN_LIFETIME), tracked so it can be blacklisted."""

    access_token_class = GatewayAccessToken

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Read at issue time, so a settings change applies without re-importing the class.
        self.lifetime = timedelta(milliseconds=settings.JWT_REFRESH_TOKEN_LIFETIME_MS)
        super().__init__(*args, **kwargs)

    def get_token_backend(self) -> TokenBackend:
        """The gateway's backend (configured algorithm, `kid` header)."""
        return token_backend()

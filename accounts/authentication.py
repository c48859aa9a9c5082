"""DRF authentication for every credential the gateway accepts: JWT, OAuth2 token, API key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.request import Request

from accounts.errors import BEARER_CHALLENGE, InvalidCredentials
from accounts.identity import Principal
from accounts.selectors import (
    principal_for_api_key,
    principal_for_jwt,
    principal_for_oauth_token,
    principal_for_user,
)

# Longer than any real token: refuse before parsing or hashing it.
MAX_CREDENTIAL_LENGTH = 8192


def looks_like_jwt(value: str) -> bool:
    """A JWS compact token (`header.payload.signature`) rather than an opaque OAuth2 token."""
    return value.startswith("eyJ") and value.count(".") == 2


def read_credential(request: Request | Any) -> tuple[str, str] | None:
    """(kind, value) of the credential the request carries: jwt, oauth2 or api_key."""
    return credential_in(request.META)


def credential_in(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, value) of the credential in a request's META (HTTP_* headers), if any."""
    authorization = meta.get("HTTP_AUTHORIZATION")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            value = value.strip()
            if not value or len(value) > MAX_CREDENTIAL_LENGTH:
                raise InvalidCredentials("The bearer token is empty or too long.")
            return ("jwt" if looks_like_jwt(value) else "oauth2"), value
    api_key = meta.get("HTTP_X_API_KEY")
    if api_key is not None:
        api_key = api_key.strip()
        if not api_key or len(api_key) > MAX_CREDENTIAL_LENGTH:
            raise InvalidCredentials("The API key is empty or too long.")
        return "api_key", api_key
    return None


def authenticate_credential(kind: str, value: str, *, record_use: bool = True) -> Principal:
    """The principal behind a credential; InvalidCredentials when it is not valid."""
    if kind == "jwt":
        return principal_for_jwt(token=value)
    if kind == "oauth2":
        return principal_for_oauth_token(raw_token=value)
    return principal_for_api_key(raw_key=value, record_use=record_use)


class CredentialAuthentication(BaseAuthentication):
    """Bearer JWT, Bearer OAuth2 access token or X-API-Key; request.user is a Principal."""

    def authenticate(self, request: Request) -> tuple[Principal, str] | None:
        """The principal and credential kind, None without credentials, 401 when invalid."""
        credential = read_credential(request)
        if credential is None:
            return None
        kind, value = credential
        return authenticate_credential(kind, value), kind

    def authenticate_header(self, request: Request) -> str:
        """The challenge sent with a 401."""
        return BEARER_CHALLENGE


class PrincipalSessionAuthentication(SessionAuthentication):
    """A console session, as a Principal (for /users/me in the browser)."""

    def authenticate(self, request: Request) -> tuple[Principal, str] | None:
        """The logged-in console user, CSRF-checked as DRF does."""
        result = super().authenticate(request)
        if result is None:
            return None
        user = result[0]
        return principal_for_user(user=user, credential="session"), "session"

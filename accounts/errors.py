"""Authentication and authorization errors, rendered as problem+json by the one handler."""

from __future__ import annotations

from gateway_project.errors import GatewayError

BEARER_CHALLENGE = 'Bearer realm="gateway"'


class CredentialsRequired(GatewayError):
    """The caller sent no credentials where they are required."""

    status_code = 401
    default_code = "not_authenticated"
    default_detail = "This route needs credentials: a Bearer token or an X-API-Key."
    title = "Unauthorized"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": BEARER_CHALLENGE})


class InvalidCredentials(GatewayError):
    """The caller's token or key is malformed, forged, expired, revoked or unknown."""

    status_code = 401
    default_code = "authentication_failed"
    default_detail = "The credentials are not valid."
    title = "Unauthorized"

    def __init__(self, detail: str | None = None) -> None:
        challenge = f'{BEARER_CHALLENGE}, error="invalid_token"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class AccessDenied(GatewayError):
    """The caller is known but lacks a role or permission the route needs."""

    status_code = 403
    default_code = "permission_denied"
    default_detail = "You do not have the role or permission this route needs."
    title = "Forbidden"


class TooManyLoginAttempts(GatewayError):
    """Too many failed logins for this account from this address."""

    status_code = 429
    default_code = "too_many_login_attempts"
    default_detail = "Too many failed login attempts; try again later."
    title = "Too many requests"

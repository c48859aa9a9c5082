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


class OtpRequired(InvalidCredentials):
    """The account has two-factor authentication and the request carried no `otp` code."""

    default_code = "otp_required"
    default_detail = (
        "This account has two-factor authentication: send the current code of its "
        "authenticator app (or one of its recovery codes) in the `otp` field."
    )


class OtpInvalid(InvalidCredentials):
    """The `otp` code is wrong, expired, already used, or a used-up recovery code."""

    default_code = "otp_invalid"
    default_detail = (
        "The `otp` code is not valid: send the authenticator app's current code "
        "(each code works once) or an unused recovery code."
    )


class MfaEnrolmentRequired(GatewayError):
    """GATEWAY_ADMIN_REQUIRE_MFA: a superuser without a device must enrol before anything else."""

    status_code = 403
    default_code = "mfa_enrolment_required"
    default_detail = (
        "Superusers must set up two-factor authentication first: log in to the console at "
        "/admin/ and follow 'Two-factor authentication'."
    )
    title = "Forbidden"


class MfaVerificationRequired(GatewayError):
    """A console session that has passed the password but not yet the second factor."""

    status_code = 403
    default_code = "mfa_required"
    default_detail = (
        "This session has not passed two-factor authentication: finish logging in at /admin/."
    )
    title = "Forbidden"

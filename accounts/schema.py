"""OpenAPI security schemes for the gateway's credentials (drf-spectacular extensions)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

_BEARER = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT from /auth/token/ or an OAuth2 access token from /o/token/",
}
_API_KEY = {"type": "apiKey", "in": "header", "name": "X-API-Key"}


class CredentialAuthenticationScheme(OpenApiAuthenticationExtension):
    """Bearer token or X-API-Key."""

    target_class = "accounts.authentication.CredentialAuthentication"
    name = ["bearerAuth", "apiKeyAuth"]

    def get_security_definition(self, auto_schema: Any) -> Any:
        """Both schemes; either one authenticates."""
        return [_BEARER, _API_KEY]


class SessionScheme(OpenApiAuthenticationExtension):
    """A console session cookie."""

    target_class = "accounts.authentication.PrincipalSessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema: Any) -> Any:
        """Django's session cookie."""
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}

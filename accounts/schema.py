"""OpenAPI security scheme for the console session on /users/me (drf-spectacular extension).

The JWT / OAuth2 / API-key schemes the gateway accepts are declared once, here: the management
API's schema (management/api/schema.py) and the services' rewritten documents
(routing/spec_rewrite.py) both use them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

# The credentials the proxy and the management API accept, as OpenAPI security schemes.
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "jwtAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT access token from POST /auth/token/ (username and password).",
    },
    "oauth2": {
        "type": "oauth2",
        "description": "An OAuth 2.0 access token from /o/token/.",
        "flows": {
            "clientCredentials": {"tokenUrl": "/o/token/", "scopes": {}},
            "authorizationCode": {
                "authorizationUrl": "/o/authorize/",
                "tokenUrl": "/o/token/",
                "scopes": {},
            },
        },
    },
    "apiKeyAuth": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API client's key.",
    },
}
TOKEN_SCHEMES = ("jwtAuth", "oauth2", "apiKeyAuth")


class SessionScheme(OpenApiAuthenticationExtension):
    """A console session cookie, read as a Principal."""

    target_class = "accounts.authentication.PrincipalSessionAuthentication"
    # Not "cookieAuth": that name belongs to DRF's SessionAuthentication, a different class.
    name = "consoleSession"

    def get_security_definition(self, auto_schema: Any) -> Any:
        """Django's session cookie."""
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}

"""OpenAPI security scheme for the console session on /users/me (drf-spectacular extension).

The JWT / OAuth2 / API-key schemes of CredentialAuthentication are declared once, with the
management API's schema (management/api/schema.py).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class SessionScheme(OpenApiAuthenticationExtension):
    """A console session cookie, read as a Principal."""

    target_class = "accounts.authentication.PrincipalSessionAuthentication"
    # Not "cookieAuth": that name belongs to DRF's SessionAuthentication, a different class.
    name = "consoleSession"

    def get_security_definition(self, auto_schema: Any) -> Any:
        """Django's session cookie."""
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}

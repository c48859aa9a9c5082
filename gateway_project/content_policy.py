"""Content-Security-Policy (and Permissions-Policy) on the gateway's own HTML pages."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

# Scripts only from the gateway itself, or inline ones carrying this request's nonce (the API
# docs pages bootstrap Swagger UI and ReDoc inline). Inline styles are allowed: the console's
# templates and ReDoc use them, and a style cannot run code.
_POLICY = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action {form_action}; frame-ancestors 'none'"
)
# What a page may add to form-action: one origin (`https://app.example:8443`) or a bare scheme.
_FORM_ACTION_SOURCE = re.compile(
    r"[a-z][a-z0-9+.-]*:(//([a-z0-9.-]+|\[[0-9a-f:.]+\])(:[0-9]{1,5})?)?", re.I
)
_PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def allow_form_action(response: HttpResponseBase, source: str) -> bool:
    """Let this one response's forms also submit (and redirect) to `source`.

    False (and nothing added) when `source` is not a plain CSP origin or scheme source, so a
    strange redirect URI can never inject directives into the policy.
    """
    if not _FORM_ACTION_SOURCE.fullmatch(source):
        return False
    response.csp_form_action = (*getattr(response, "csp_form_action", ()), source)  # type: ignore[attr-defined]
    return True


class CspNonce:
    """A request's nonce, drawn only when a template or the header first needs it."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value: str | None = None

    def __str__(self) -> str:
        if self._value is None:
            self._value = secrets.token_urlsafe(16)
        return self._value


class ContentSecurityPolicyMiddleware:
    """Adds a per-request-nonce CSP to HTML the gateway renders; proxied answers are untouched."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        """Give templates `request.csp_nonce`, then set the headers on the gateway's HTML."""
        nonce = CspNonce()  # proxied requests never draw one
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        if getattr(response, "gateway_proxied", False):
            return response
        if response.get("Content-Type", "").startswith("text/html"):
            form_action = " ".join(("'self'", *getattr(response, "csp_form_action", ())))
            response.setdefault(
                "Content-Security-Policy", _POLICY.format(nonce=nonce, form_action=form_action)
            )
            response.setdefault("Permissions-Policy", _PERMISSIONS_POLICY)
        return response

"""The OAuth 2.0 endpoints the gateway wraps: RFC 6749 JSON errors, introspection restricted.

django-oauth-toolkit answers some refusals itself with an empty text/html body (a 403 from
the introspection endpoint, a 405 for a wrong method); under /o/ every error the gateway
writes is RFC 6749's `{"error", "error_description"}` JSON instead.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import unquote_plus

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider import views as oauth2_views

from accounts.errors import BEARER_CHALLENGE


def oauth_error(
    status: int, error: str, description: str, *, headers: dict[str, str] | None = None
) -> JsonResponse:
    """An RFC 6749 section 5.2 error body, never cached."""
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def may_introspect(client_id: str | None) -> bool:
    """Whether an OAuth client may call /o/introspect/ (GATEWAY_OAUTH_INTROSPECTION_CLIENTS)."""
    return bool(client_id) and client_id in settings.GATEWAY_OAUTH_INTROSPECTION_CLIENTS


class OAuthErrorsMixin(View):
    """A wrong method answers 405 in RFC 6749's JSON, with Allow."""

    def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        """405 as JSON (Django's default is an empty body)."""
        allowed = ", ".join(m.upper() for m in self._allowed_methods())  # type: ignore[attr-defined]
        return oauth_error(
            405,
            "invalid_request",
            f"This endpoint accepts {allowed}.",
            headers={"Allow": allowed},
        )


class TokenView(OAuthErrorsMixin, oauth2_views.TokenView):
    """/o/token/ with JSON errors for every refusal."""


class RevokeTokenView(OAuthErrorsMixin, oauth2_views.RevokeTokenView):
    """/o/revoke_token/ with JSON errors for every refusal."""


def _client_id_of(request: HttpRequest) -> str | None:
    """The client id the caller authenticated with: HTTP Basic, else the form body."""
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        return unquote_plus(decoded.partition(":")[0])
    return request.POST.get("client_id") or None


@method_decorator(csrf_exempt, name="dispatch")
class IntrospectTokenView(OAuthErrorsMixin, oauth2_views.IntrospectTokenView):
    """/o/introspect/ (RFC 7662) for the clients GATEWAY_OAUTH_INTROSPECTION_CLIENTS names.

    The caller authenticates as a client (HTTP Basic or form credentials) or with a bearer
    token holding the `introspection` scope (which only those clients can obtain); any other
    caller gets 401, and an authenticated client not on the list 403, both in RFC 6749 JSON.
    """

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """Authenticate the caller, check it may introspect, then answer."""
        if request.method is None or request.method.upper() not in ("GET", "POST"):
            return self.http_method_not_allowed(request)
        if self.authenticate_client(request):
            client_id = _client_id_of(request)
        else:
            valid, oauth_request = self.verify_request(request)
            if not valid:
                return oauth_error(
                    401,
                    "invalid_client",
                    "Authenticate as an OAuth client allowed to introspect (HTTP Basic), or "
                    "send a bearer token with the introspection scope.",
                    headers={"WWW-Authenticate": BEARER_CHALLENGE},
                )
            client = getattr(oauth_request, "client", None)
            client_id = getattr(client, "client_id", None)
        if not may_introspect(client_id):
            return oauth_error(
                403,
                "unauthorized_client",
                "This client may not introspect tokens; an administrator lists the clients "
                "that may in GATEWAY_OAUTH_INTROSPECTION_CLIENTS.",
            )
        return View.dispatch(self, request, *args, **kwargs)

"""The end-user pages of the OAuth 2.0 provider under /o/: sign-in and consent.

The consent form posts to /o/authorize/, which answers with a redirect to the application's
redirect URI. Browsers apply the page's CSP `form-action` to that redirect too, so the consent
page allows exactly one more origin: the one of the redirect URI registered for the application
and named in this request. No other page gets it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.views import LoginView
from django.http import HttpResponse
from oauth2_provider.models import get_application_model
from oauth2_provider.views import AuthorizationView

from accounts.mfa_views import TwoStepLoginMixin
from gateway_project.content_policy import allow_form_action


def redirect_origin(application: Any, redirect_uri: str | None) -> str | None:
    """The CSP source for `redirect_uri` if it is registered for `application`, else None.

    `scheme://host[:port]` for http(s); `scheme:` for a native app's private-use scheme.
    """
    if (
        application is None
        or not redirect_uri
        or not application.redirect_uri_allowed(redirect_uri)
    ):
        return None
    try:
        parts = urlsplit(redirect_uri)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return f"{scheme}:" if scheme else None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if not host:
        return None
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


class ConsentView(AuthorizationView):
    """django-oauth-toolkit's /o/authorize/ with the end-user consent page and its CSP."""

    template_name = "accounts/oauth_authorize.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        """The consent page's context, plus the origin the user will be sent back to."""
        context = super().get_context_data(**kwargs)
        context["redirect_origin"] = self._origin(context)
        return context

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        """Render the page; its CSP lets the form complete to the registered redirect origin."""
        response = super().render_to_response(context, **kwargs)
        origin = context.get("redirect_origin") or self._origin(context)
        if origin:
            allow_form_action(response, origin)
        return response

    def _origin(self, context: dict[str, Any]) -> str | None:
        application = context.get("application")
        redirect_uri = context.get("redirect_uri")
        form = context.get("form")
        if application is None and form is not None and form.is_bound:
            # A re-rendered POST: the hidden fields name the client and the redirect URI.
            client_id = form.data.get("client_id")
            application = get_application_model().objects.filter(client_id=client_id).first()
            redirect_uri = form.data.get("redirect_uri")
        return redirect_origin(application, redirect_uri)


class EndUserLoginView(TwoStepLoginMixin, LoginView):
    """The sign-in page /o/authorize/ sends people to (any active account, not only staff);
    people with two-factor authentication give their code next, as in the console."""

    template_name = "accounts/oauth_login.html"
    redirect_authenticated_user = False

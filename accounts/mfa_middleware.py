"""The second factor's gate on the gateway's own pages (proxied requests never come here)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponseBase, HttpResponseRedirect

from accounts import mfa
from accounts.errors import MfaEnrolmentRequired, MfaVerificationRequired
from gateway_project.errors import problem_response

VERIFY_PATH = "/admin/mfa/verify/"
SETUP_PATH = "/admin/mfa/"
# What a session that has not passed the second factor may still reach.
_ALWAYS_OPEN = (
    VERIFY_PATH,
    "/admin/login/",
    "/admin/logout/",
    "/admin/jsi18n/",
    "/static/",
    "/health",
    "/metrics",
    "/auth/",  # the token endpoints never use the session; /auth/token/ asks for `otp` itself
)
# HTML pages a person opens: sent on to the right page. Anything else gets problem+json.
_PAGES = ("/admin/", "/o/authorize/", "/o/login/")


class MfaGateMiddleware:
    """A logged-in session of a user with a device that has not passed the code step reaches
    only the code page and logout; with GATEWAY_ADMIN_REQUIRE_MFA a superuser without a device
    reaches only enrolment and logout. Comes after django-otp's OTPMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        """Pass verified and device-less sessions; redirect or refuse the others."""
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or request.path.startswith(_ALWAYS_OPEN):
            return self.get_response(request)
        if user.is_verified():
            return self.get_response(request)
        if mfa.has_confirmed_device(user):
            return self._refuse(request, VERIFY_PATH, MfaVerificationRequired())
        if mfa.enrolment_required(user) and request.path != SETUP_PATH:
            return self._refuse(request, SETUP_PATH, MfaEnrolmentRequired())
        return self.get_response(request)

    @staticmethod
    def _refuse(
        request: HttpRequest, page: str, error: MfaEnrolmentRequired | MfaVerificationRequired
    ) -> HttpResponseBase:
        if request.path.startswith(_PAGES) and request.method in ("GET", "HEAD"):
            return HttpResponseRedirect(f"{page}?{urlencode({'next': request.get_full_path()})}")
        if request.path.startswith(_PAGES):
            return HttpResponseRedirect(page)
        return problem_response(
            request,
            status=error.status_code,
            code=error.default_code,
            title=error.title,
            detail=str(error.detail),
        )

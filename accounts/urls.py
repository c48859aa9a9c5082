"""The identity endpoints and the OAuth2 provider's (under /o/)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import include, path, re_path

from accounts import oauth_pages, oauth_views, views


def oauth_not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """No OAuth 2.0 endpoint at this path: 404 in RFC 6749's JSON, like every /o/ error."""
    return oauth_views.oauth_error(404, "invalid_request", "No OAuth 2.0 endpoint at this path.")


oauth2_patterns = (
    [
        path("login/", oauth_pages.EndUserLoginView.as_view(), name="login"),
        path("authorize/", oauth_pages.ConsentView.as_view(), name="authorize"),
        path("token/", oauth_views.TokenView.as_view(), name="token"),
        path("revoke_token/", oauth_views.RevokeTokenView.as_view(), name="revoke-token"),
        path("introspect/", oauth_views.IntrospectTokenView.as_view(), name="introspect"),
        re_path(r"^(?P<rest>.*)$", oauth_not_found, name="oauth-not-found"),
    ],
    "oauth2_provider",
)

urlpatterns = [
    path("auth/token/", views.TokenObtainView.as_view(), name="token-obtain"),
    path("auth/token/refresh/", views.TokenRefreshView.as_view(), name="token-refresh"),
    path("auth/logout/", views.LogoutView.as_view(), name="logout"),
    path("users/me", views.MeView.as_view(), name="users-me"),
    path("o/", include(oauth2_patterns)),
]

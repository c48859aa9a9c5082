"""The identity endpoints and the OAuth2 provider's (under /o/)."""

from __future__ import annotations

from django.urls import include, path
from oauth2_provider import views as oauth2_views

from accounts import oauth_pages, views

oauth2_patterns = (
    [
        path("login/", oauth_pages.EndUserLoginView.as_view(), name="login"),
        path("authorize/", oauth_pages.ConsentView.as_view(), name="authorize"),
        path("token/", oauth2_views.TokenView.as_view(), name="token"),
        path("revoke_token/", oauth2_views.RevokeTokenView.as_view(), name="revoke-token"),
        path("introspect/", oauth2_views.IntrospectTokenView.as_view(), name="introspect"),
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

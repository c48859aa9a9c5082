"""URL configuration: the gateway's own paths first, then the proxy for everything else."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularJSONAPIView

from accounts.mfa_views import console_login
from gateway_project import health
from gateway_project.metrics_view import metrics_endpoint
from routing.console import logout_view
from routing.portal import views as portal
from routing.views import ProxyView

handler400 = "gateway_project.errors.handler400"
handler403 = "gateway_project.errors.handler403"
handler404 = "gateway_project.errors.handler404"
handler500 = "gateway_project.errors.handler500"

urlpatterns = [
    path("admin/gateway/", include("routing.console")),
    path("admin/gateway/history/", include("audit.views")),
    path("admin/logout/", logout_view, name="console-logout"),
    # Two-factor authentication: the login's code step and enrolment (accounts/mfa_views.py).
    path("admin/login/", console_login, name="console-login"),
    path("admin/mfa/", include("accounts.mfa_urls")),
    path("admin/", admin.site.urls),
    path("health", health.liveness, name="health"),
    path("health/ready", health.readiness, name="health-ready"),
    path("api/gateway/registry/", include("routing.registry")),
    path("metrics", metrics_endpoint, name="metrics"),
    path("api/gateway/", include("routing.api.urls")),
    path("api/openapi.json", SpectacularJSONAPIView.as_view(), name="schema"),
    path("api/docs", portal.GatewaySwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc", portal.GatewayRedocView.as_view(url_name="schema"), name="redoc"),
    path("api/redoc/redoc.standalone.js", portal.redoc_bundle, name="redoc-bundle"),
    path("api/docs/services/", portal.ServiceDocsListView.as_view(), name="service-docs"),
    path(
        "api/docs/services/<str:name>/openapi.json",
        portal.ServiceSpecView.as_view(),
        name="service-openapi",
    ),
    path("", include("accounts.urls")),
    # Everything else is a candidate for a configured route.
    re_path(r"", ProxyView.as_view(), name="proxy"),
]

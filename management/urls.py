"""The management app's paths: console pages, the management and registry APIs, the docs portal."""

from __future__ import annotations

from django.urls import include, path

from management.console import logout_view
from management.portal import views as portal

urlpatterns = [
    path("admin/gateway/", include("management.console")),
    path("admin/logout/", logout_view, name="console-logout"),
    path("api/gateway/registry/", include("management.registry")),
    path("api/gateway/", include("management.api.urls")),
    path("api/openapi.json", portal.GatewaySchemaView.as_view(), name="schema"),
    path("api/docs", portal.GatewaySwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc", portal.GatewayRedocView.as_view(url_name="schema"), name="redoc"),
    path("api/redoc/redoc.standalone.js", portal.redoc_bundle, name="redoc-bundle"),
    path("api/docs/services/", portal.ServiceDocsListView.as_view(), name="service-docs"),
    path(
        "api/docs/services/<str:name>/openapi.json",
        portal.ServiceSpecView.as_view(),
        name="service-openapi",
    ),
]

"""URLs of the management API, mounted under /api/gateway/."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from management.api import credentials, views

router = SimpleRouter()
router.register("services", views.ServiceViewSet, basename="gateway-service")
router.register("routes", views.RouteViewSet, basename="gateway-route")
router.register("roles", views.RoleViewSet, basename="gateway-role")
router.register("permissions", views.PermissionViewSet, basename="gateway-permission")
router.register("users", views.UserViewSet, basename="gateway-user")
router.register("quotas", views.QuotaViewSet, basename="gateway-quota")
router.register("clients", credentials.ApiClientViewSet, basename="gateway-client")
router.register("api-keys", credentials.ApiKeyViewSet, basename="gateway-api-key")
router.register(
    "oauth-applications", credentials.OAuthApplicationViewSet, basename="gateway-oauth-application"
)

urlpatterns = [
    path("config/export/", views.ConfigExportView.as_view(), name="gateway-config-export"),
    path("config/import/", views.ConfigImportView.as_view(), name="gateway-config-import"),
    path("explain/", views.ExplainView.as_view(), name="gateway-explain"),
    *router.urls,
]

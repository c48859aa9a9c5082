"""URL configuration: the gateway's own paths first, then the proxy for everything else."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path

from gateway_project import health
from routing.views import ProxyView

handler400 = "gateway_project.errors.handler400"
handler403 = "gateway_project.errors.handler403"
handler404 = "gateway_project.errors.handler404"
handler500 = "gateway_project.errors.handler500"

urlpatterns = [
    path("admin/gateway/", include("routing.console")),
    path("admin/", admin.site.urls),
    path("health", health.liveness, name="health"),
    path("health/ready", health.readiness, name="health-ready"),
    # Everything else is a candidate for a configured route.
    re_path(r"", ProxyView.as_view(), name="proxy"),
]

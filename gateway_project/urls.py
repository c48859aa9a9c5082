"""URL configuration: the gateway's own paths first, then the proxy for everything else.

The root URLconf wires the apps together: each app's paths are in its own URLconf (management:
console pages, APIs and docs portal; routing.proxy_urls: the proxy, also the URLconf of proxied
requests in gateway_project/dispatch.py).
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from accounts.mfa_views import console_login
from gateway_project import health
from gateway_project.metrics_view import metrics_endpoint

handler400 = "gateway_project.errors.handler400"
handler403 = "gateway_project.errors.handler403"
handler404 = "gateway_project.errors.handler404"
handler500 = "gateway_project.errors.handler500"

urlpatterns = [
    # Console pages, APIs and docs portal; before admin.site.urls, which answers any /admin/ path.
    path("", include("management.urls")),
    path("admin/gateway/history/", include("audit.views")),
    # Two-factor authentication: the login's code step and enrolment (accounts/mfa_views.py).
    path("admin/login/", console_login, name="console-login"),
    path("admin/mfa/", include("accounts.mfa_urls")),
    path("admin/", admin.site.urls),
    path("health", health.liveness, name="health"),
    path("health/ready", health.readiness, name="health-ready"),
    path("metrics", metrics_endpoint, name="metrics"),
    path("", include("accounts.urls")),
    # Everything else is a candidate for a configured route (the one proxy path, routing/).
    path("", include("routing.proxy_urls")),
]

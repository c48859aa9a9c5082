"""The admin plane (console, management API, API docs) restricted by source address."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponseBase

from gateway_project.errors import problem_response
from routing.forwarding import client_address

# The admin plane's paths. The registry (services registering their own targets) has its own
# token and is called from service hosts, /metrics has GATEWAY_METRICS_ALLOWED_NETWORKS.
ADMIN_PREFIXES = ("/admin/", "/api/gateway/", "/api/docs", "/api/redoc", "/api/openapi.json")
NOT_ADMIN_PREFIXES = ("/api/gateway/registry/",)


def is_admin_path(path: str) -> bool:
    """Whether `path` belongs to the admin plane."""
    return path.startswith(ADMIN_PREFIXES) and not path.startswith(NOT_ADMIN_PREFIXES)


def admin_address_allowed(request: HttpRequest) -> bool:
    """Whether the caller's address (behind trusted proxies: the client's) may use the plane."""
    address = client_address(
        str(request.META.get("REMOTE_ADDR", "")), request.META.get("HTTP_X_FORWARDED_FOR")
    )
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in settings.GATEWAY_ADMIN_ALLOWED_NETWORKS)


class AdminNetworkMiddleware:
    """403 problem+json on admin-plane paths from outside GATEWAY_ADMIN_ALLOWED_NETWORKS.

    Not installed at all (no cost per request) when the setting is empty.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        if not settings.GATEWAY_ADMIN_ALLOWED_NETWORKS:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        """Refuse the admin plane to other addresses; pass everything else on."""
        if is_admin_path(request.path) and not admin_address_allowed(request):
            return problem_response(
                request,
                status=403,
                code="admin_address_forbidden",
                title="Forbidden",
                detail="The console and management API are not served to this address.",
            )
        return self.get_response(request)

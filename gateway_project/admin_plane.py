"""The admin plane (console, management API, API docs) restricted by source address."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponseBase

from gateway_project.errors import problem_response
from gateway_project.net import caller_allowed, is_admin_plane_path


class AdminNetworkMiddleware:
    """403 problem+json on admin-plane paths from outside GATEWAY_ADMIN_ALLOWED_NETWORKS.

    Not installed at all (no cost per request) when the setting is empty.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        if not settings.GATEWAY_ADMIN_PLANE.allowed_networks:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        """Refuse the admin plane to other addresses; pass everything else on."""
        if is_admin_plane_path(request.path) and not caller_allowed(
            request.META, settings.GATEWAY_ADMIN_PLANE.allowed_networks
        ):
            return problem_response(
                request,
                status=403,
                code="admin_address_forbidden",
                title="Forbidden",
                detail="The console and management API are not served to this address.",
            )
        return self.get_response(request)

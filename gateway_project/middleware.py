"""Cross-cutting middleware: the request id every response echoes."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.security import SecurityMiddleware

from gateway_project.ids import random_hex
from gateway_project.response_headers import set_header

REQUEST_ID_HEADER = "X-Request-ID"
_WELL_FORMED_ID = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")


def request_id_for(client_value: str | None) -> str:
    """Keep a well-formed client request id, else generate one."""
    if client_value and _WELL_FORMED_ID.match(client_value):
        return client_value
    return random_hex(16)


class RequestIdMiddleware:
    """Give every request an id (`request.request_id`) and echo it as `X-Request-ID`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        """Assign the id before the view runs and echo it on the way out."""
        request_id = request_id_for(request.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id  # type: ignore[attr-defined]
        response = self.get_response(request)
        set_header(response, REQUEST_ID_HEADER, request_id)
        return response


class ConsoleSecurityMiddleware(SecurityMiddleware):
    """Django's security headers for the gateway's own pages, never on proxied answers."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """Leave an upstream's answer as the upstream sent it."""
        if getattr(response, "gateway_proxied", False):
            return response
        return super().process_response(request, response)


class AllowedHostMiddleware:
    """Reject a Host outside ALLOWED_HOSTS with 400 (CommonMiddleware's check, for the proxy)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        """Validate the host, then go on."""
        request.get_host()  # raises DisallowedHost, which Django answers with handler400
        return self.get_response(request)

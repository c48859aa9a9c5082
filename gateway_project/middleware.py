"""Cross-cutting middleware: the request id every response echoes."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.core.signals import setting_changed
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


# Raw hosts that passed Django's check, for as long as the settings it reads stay the same.
_ACCEPTED_HOSTS: set[str] = set()
_ACCEPTED_HOSTS_LIMIT = 1024  # a wildcard in ALLOWED_HOSTS admits any number of names
# A DNS name has at most 253 characters; with a port and brackets, a real host fits in this.
# A longer one (up to gunicorn's header field limit) is checked every time, never remembered.
_REMEMBERED_HOST_LENGTH = 270
_HOST_SETTINGS = frozenset({"ALLOWED_HOSTS", "DEBUG"})  # what the check reads besides the host


def _forget_accepted_hosts(*, setting: str, **_kwargs: Any) -> None:
    # A new set, not clear(): a request checked under the old settings records its host in the
    # set it started with (see AllowedHostMiddleware.__call__), which is now no one's memory.
    global _ACCEPTED_HOSTS
    if setting in _HOST_SETTINGS:
        _ACCEPTED_HOSTS = set()


setting_changed.connect(_forget_accepted_hosts, dispatch_uid="gateway-accepted-hosts")


class AllowedHostMiddleware:
    """Reject a Host outside ALLOWED_HOSTS with 400 (CommonMiddleware's check, for the proxy).

    Django's check (split the host from its port, match the name against every ALLOWED_HOSTS
    pattern) depends only on the raw host (computed per request, as get_host() does) and on
    ALLOWED_HOSTS and DEBUG, so a raw host that passed once is let through without it until one
    of those two changes. A refused host is never remembered: it takes Django's check, and its
    400, every time.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        """Validate the host, then go on."""
        # The host Django's get_host() checks (X-Forwarded-Host, Host or SERVER_NAME:PORT).
        raw_host = request._get_raw_host()  # type: ignore[attr-defined]
        # The memory as it is before the check: should the settings change meanwhile (another
        # thread's override_settings), the verdict goes to the memory they have replaced.
        accepted = _ACCEPTED_HOSTS
        if raw_host not in accepted:
            request.get_host()  # raises DisallowedHost, which Django answers with handler400
            if len(raw_host) <= _REMEMBERED_HOST_LENGTH:
                if len(accepted) >= _ACCEPTED_HOSTS_LIMIT:
                    accepted.clear()
                accepted.add(raw_host)
        return self.get_response(request)

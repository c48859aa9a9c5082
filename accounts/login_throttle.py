"""Login throttling hooks for django-axes: the client address and the 429 answer."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.errors import TooManyLoginAttempts
from gateway_project.errors import problem_response
from gateway_project.net import request_client_address

logger = logging.getLogger("gateway.auth")


def client_address(request: HttpRequest) -> str:
    """Axes' AXES_CLIENT_IP_CALLABLE: the caller's address, by the rule every limit uses."""
    return request_client_address(request.META)


def cooloff_seconds() -> int:
    """How long a locked-out account and address must wait."""
    return max(1, int(settings.AXES_COOLOFF_TIME.total_seconds()))


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """Axes' answer to a lockout: 429 with Retry-After (problem+json on /auth/)."""
    username = (credentials or {}).get("username") or ""
    address = client_address(request)
    logger.warning(
        "login locked out: username=%r address=%s path=%s", username, address, request.path
    )
    retry_after = str(cooloff_seconds())
    if request.path.startswith("/auth/"):
        response: HttpResponse = problem_response(
            request,
            status=TooManyLoginAttempts.status_code,
            code=TooManyLoginAttempts.default_code,
            title=TooManyLoginAttempts.title,
            detail=TooManyLoginAttempts.default_detail,
        )
    elif request.path.startswith("/admin/"):  # the console's password and code steps
        from django.contrib import admin  # the admin site is ready only after app loading

        response = render(
            request,
            "admin/mfa/locked_out.html",
            {**admin.site.each_context(request), "title": "Log in", "retry_after": retry_after},
            status=429,
        )
    else:  # /o/login/'s HTML form: a sentence a person can read
        response = HttpResponse(
            "Too many failed login attempts for this account from your address. "
            f"Try again in {retry_after} seconds.",
            status=429,
            content_type="text/plain; charset=utf-8",
        )
    response["Retry-After"] = retry_after
    return response

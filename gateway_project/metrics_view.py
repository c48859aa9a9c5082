"""`/metrics`: the Prometheus scrape endpoint, optionally behind a token and/or address list."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from gateway_project import metrics
from gateway_project.errors import problem_response
from gateway_project.net import caller_allowed


def _token_ok(request: HttpRequest, token: str) -> bool:
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)


def metrics_access_denied(request: HttpRequest) -> HttpResponse | None:
    """A problem response when the caller may not scrape, else None (each set rule must pass)."""
    networks = settings.GATEWAY_METRICS.allowed_networks
    if networks and not caller_allowed(request.META, networks):
        return problem_response(
            request,
            status=403,
            code="metrics_forbidden",
            title="Forbidden",
            detail="This address may not read the metrics.",
        )
    token = settings.GATEWAY_METRICS.token
    if token and not _token_ok(request, token):
        response = problem_response(
            request,
            status=401,
            code="metrics_unauthorized",
            title="Unauthorized",
            detail="The metrics need `Authorization: Bearer <GATEWAY_METRICS_TOKEN>`.",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return None


@require_safe
def metrics_endpoint(request: HttpRequest) -> HttpResponse:
    """Every worker's metrics in the Prometheus text format."""
    denied = metrics_access_denied(request)
    if denied is not None:
        return denied
    return HttpResponse(metrics.scrape(), content_type=CONTENT_TYPE_LATEST)

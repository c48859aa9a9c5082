"""Errors as RFC 9457 problem+json: the gateway's exception classes and their one renderer."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from gateway_project.client_framing import MalformedBody
from gateway_project.error_tracking import remember_cause

logger = logging.getLogger("gateway.errors")

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:gateway:problem:"


class GatewayError(drf.APIException):
    """Base of every error the gateway raises itself; carries its own status, code and title."""

    status_code = 500
    default_code = "internal_error"
    default_detail = "The gateway could not complete the request."
    title = "Internal server error"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(detail or self.default_detail, self.default_code)
        self.headers = headers or {}


class BadRequest(GatewayError):
    """The request (often its path) is malformed."""

    status_code = 400
    default_code = "bad_request"
    default_detail = "The request is malformed."
    title = "Bad request"


class MalformedRequestBody(BadRequest):
    """The request body's framing (chunk sizes, terminators) is malformed or cut short."""

    default_code = "malformed_body"
    default_detail = "The request body's chunked framing is malformed."


class IpForbidden(GatewayError):
    """The client's address is outside the route's `ip_allow` or inside its `ip_deny`."""

    status_code = 403
    default_code = "ip_forbidden"
    default_detail = "Requests from this address are not allowed on this route."
    title = "Forbidden"


class RequestInvalid(BadRequest):
    """The request does not satisfy its OpenAPI operation; `errors` lists each violation."""

    default_code = "validation_error"
    default_detail = "The request does not match the service's API description; see errors."
    title = "Validation error"

    def __init__(self, errors: list[dict[str, str]], *, detail: str | None = None) -> None:
        super().__init__(detail)
        self.errors = errors


class OperationNotFound(GatewayError):
    """`validate` is on, and the service's OpenAPI document has no operation for the request."""

    status_code = 404
    default_code = "operation_not_found"
    default_detail = "The service's API description has no operation for this method and path."
    title = "Not found"


class RouteNotFound(GatewayError):
    """No route matches the path."""

    status_code = 404
    default_code = "route_not_found"
    default_detail = "No route matches this path."
    title = "Not found"


class MethodNotAllowed(GatewayError):
    """A route matches the path but not the method."""

    status_code = 405
    default_code = "method_not_allowed"
    default_detail = "This path does not accept that method."
    title = "Method not allowed"


class PayloadTooLarge(GatewayError):
    """The request body is larger than GATEWAY_MAX_BODY_SIZE."""

    status_code = 413
    default_code = "payload_too_large"
    default_detail = "The request body is larger than the gateway accepts."
    title = "Payload too large"


class UpstreamUnavailable(GatewayError):
    """The upstream refused the connection or broke it before answering."""

    status_code = 502
    default_code = "upstream_unavailable"
    default_detail = "The upstream service could not be reached."
    title = "Bad gateway"


class UpstreamInvalidResponse(GatewayError):
    """The upstream sent something that is not a valid HTTP response."""

    status_code = 502
    default_code = "upstream_invalid_response"
    default_detail = "The upstream service sent an invalid response."
    title = "Bad gateway"


class UpstreamTimeout(GatewayError):
    """The upstream did not answer within the route's timeout."""

    status_code = 504
    default_code = "upstream_timeout"
    default_detail = "The upstream service did not answer in time."
    title = "Gateway timeout"


class LoopDetected(GatewayError):
    """The request already passed through this gateway: forwarding it again would loop."""

    status_code = 508
    default_code = "loop_detected"
    default_detail = "The request came back to this gateway (its own Via entry); not forwarded."
    title = "Loop detected"


class ServiceUnavailable(GatewayError):
    """The gateway cannot serve the request right now (circuit open, no healthy target...)."""

    status_code = 503
    default_code = "service_unavailable"
    default_detail = "The service is temporarily unavailable."
    title = "Service unavailable"


class DatabaseUnavailable(GatewayError):
    """The database cannot be reached; writes (and uncached reads) fail until it returns."""

    status_code = 503
    default_code = "database_unavailable"
    default_detail = "The gateway's database is unreachable; try again shortly."
    title = "Service unavailable"


_DATABASE_DOWN = (OperationalError, InterfaceError)


_DRF_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    413: "Payload too large",
    415: "Unsupported media type",
    429: "Too many requests",
}


def problem_body(
    *, status: int, code: str, title: str, detail: str, request_id: str | None
) -> dict[str, Any]:
    """Return an RFC 9457 problem document."""
    return {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }


def _validation_errors(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """Flatten DRF's nested validation detail into `{"field", "message", "type"}` items."""
    errors: list[dict[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            field = f"{prefix}.{key}" if prefix else str(key)
            errors.extend(_validation_errors(value, field))
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            nested = isinstance(value, dict | list)
            field = f"{prefix}[{index}]" if nested else prefix
            errors.extend(_validation_errors(value, field))
    else:
        code = getattr(detail, "code", "invalid")
        errors.append({"field": prefix or "non_field_errors", "message": str(detail), "type": code})
    return errors


def _request_id(context: dict[str, Any]) -> str | None:
    request = context.get("request")
    return getattr(request, "request_id", None) if request is not None else None


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF exception handler: render any exception as problem+json, never leaking its text."""
    request_id = _request_id(context)
    original = exc
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, MalformedBody):
        # The client's fault, and its bytes stay out of the log: no traceback.
        logger.warning("malformed request body (request_id=%s)", request_id)
        exc = MalformedRequestBody()
    elif isinstance(exc, _DATABASE_DOWN):
        logger.warning("database unavailable (request_id=%s): %s", request_id, type(exc).__name__)
        exc = DatabaseUnavailable(headers={"Retry-After": "5"})
    if not isinstance(exc, drf.APIException):
        logger.exception("unhandled error (request_id=%s)", request_id)
        exc = GatewayError()

    status = exc.status_code
    headers = dict(getattr(exc, "headers", None) or {})
    auth_header = getattr(exc, "auth_header", None)  # DRF's challenge for a 401
    if auth_header and status == 401:
        headers.setdefault("WWW-Authenticate", str(auth_header))
    if status >= 500:
        request = context.get("request")
        remember_cause(
            getattr(request, "_request", request),
            code=str(getattr(exc, "default_code", "internal_error")),
            cause=original,
        )
    if isinstance(exc, GatewayError):
        code, title, detail = exc.default_code, exc.title, str(exc.detail)
        body = problem_body(
            status=status, code=code, title=title, detail=detail, request_id=request_id
        )
        if isinstance(exc, RequestInvalid):
            body["errors"] = exc.errors
    elif isinstance(exc, drf.ValidationError):
        body = problem_body(
            status=status,
            code="validation_error",
            title="Validation error",
            detail="The request has invalid fields; see errors.",
            request_id=request_id,
        )
        body["errors"] = _validation_errors(exc.detail)
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        body = problem_body(
            status=status,
            code=str(code),
            title=_DRF_TITLES.get(status, "Error"),
            detail=str(exc.detail),
            request_id=request_id,
        )
    wait = getattr(exc, "wait", None)
    if isinstance(exc, drf.Throttled) and wait is not None:
        headers.setdefault("Retry-After", str(max(1, int(wait + 0.999))))
    return Response(body, status=status, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


class FirstRendererNegotiation(BaseContentNegotiation):
    """Always answer with the view's first renderer: a gateway never 406s a client."""

    def select_parser(self, request: Any, parsers: Any) -> Any:
        """Pick the first parser that handles the request's content type."""
        for parser in parsers:
            if request.content_type.startswith(parser.media_type.split(";")[0]):
                return parser
        return None

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        """Pick the first renderer."""
        renderer = renderers[0]
        return renderer, renderer.media_type


def problem_response(
    request: HttpRequest, *, status: int, code: str, title: str, detail: str
) -> HttpResponse:
    """Plain Django problem+json response, for views outside DRF."""
    body = problem_body(
        status=status,
        code=code,
        title=title,
        detail=detail,
        request_id=getattr(request, "request_id", None),
    )
    return JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


def console_error_page(
    request: HttpRequest, *, status: int, heading: str, message: str
) -> HttpResponse:
    """A console error as a console page (under /admin/ the reader is a person in a browser)."""
    from django.contrib import admin
    from django.shortcuts import render

    context = {**admin.site.each_context(request), "title": heading}
    context.update(heading=heading, message=message)
    return render(request, "admin/gateway_error.html", context, status=status)


def _console(request: HttpRequest) -> bool:
    return request.path.startswith("/admin/")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django 404 handler: problem+json (a console page under /admin/)."""
    if _console(request):
        return console_error_page(
            request, status=404, heading="Not found", message="There is no console page here."
        )
    return problem_response(
        request, status=404, code="not_found", title="Not found", detail="Nothing lives here."
    )


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django 400 handler (e.g. a Host not in ALLOWED_HOSTS): problem+json."""
    return problem_response(
        request, status=400, code="bad_request", title="Bad request", detail="Bad request."
    )


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django 403 handler: problem+json (a console page under /admin/)."""
    if _console(request):
        return console_error_page(
            request,
            status=403,
            heading="Not allowed",
            message="Your console role does not allow this page or action; a superuser can "
            "change your role.",
        )
    return problem_response(
        request, status=403, code="forbidden", title="Forbidden", detail="Access denied."
    )


def handler500(request: HttpRequest) -> HttpResponse:
    """Django 500 handler: problem+json without any exception text (503 when the DB is down)."""
    if isinstance(sys.exc_info()[1], _DATABASE_DOWN):
        response = problem_response(
            request,
            status=503,
            code=DatabaseUnavailable.default_code,
            title=DatabaseUnavailable.title,
            detail=DatabaseUnavailable.default_detail,
        )
        response["Retry-After"] = "5"
        return response
    remember_cause(request, code="internal_error", cause=sys.exc_info()[1])
    return problem_response(
        request,
        status=500,
        code="internal_error",
        title="Internal server error",
        detail=GatewayError.default_detail,
    )

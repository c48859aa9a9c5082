"""The docs pages: Swagger UI with every service in its selector, ReDoc, and the service specs."""

from __future__ import annotations

import functools
import json
import re
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from drf_spectacular.views import (
    SCHEMA_KWARGS,
    SpectacularJSONAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway_project.errors import ServiceUnavailable
from management.api import schema as docs
from management.portal.selectors import documented_services, route_policies, service_document
from routing.models import Service


def gateway_url(request: Request) -> str:
    """GATEWAY_PUBLIC_URL, else the gateway's base URL as the caller reached it."""
    configured: str | None = settings.GATEWAY_PUBLIC_URL
    return configured or request.build_absolute_uri("/").rstrip("/")


_SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")


def _documented(name: str) -> bool:
    return Service.objects.filter(name=name).exclude(openapi="").exists()


def _spec_url(name: str) -> str:
    return reverse("service-openapi", kwargs={"name": name})


class DocsUnavailable(ServiceUnavailable):
    """A service's upstream document could not be fetched."""

    default_code = "docs_unavailable"
    default_detail = "The service's OpenAPI document could not be fetched."


class RoutePoliciesSerializer(serializers.Serializer):
    """One route's policies as its callers need to know them."""

    route = serializers.CharField(help_text="The route's path pattern.")
    notes = serializers.ListField(child=serializers.CharField(), help_text="One sentence each.")
    validated_operations = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="With `validate`: the operations (`METHOD /path`) checked against the schema.",
    )


class ServiceDocsStatusSerializer(serializers.Serializer):
    """One service in the portal, with whether its document is available."""

    name = serializers.CharField()
    spec_url = serializers.CharField(help_text="The rewritten document (OpenAPI 3 JSON).")
    docs_url = serializers.CharField(help_text="Swagger UI with this service selected.")
    available = serializers.BooleanField()
    error = serializers.CharField(allow_null=True, help_text="Why the document is missing.")
    policies = RoutePoliciesSerializer(
        many=True,
        help_text="Routes with policies a caller should know (validation, CORS, cache, IP "
        "restriction, WebSocket); routes without any are not listed.",
    )


class ServiceDocsListView(APIView):
    """The services the portal documents, and whether each document could be fetched."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["developer portal"],
        summary="List the documented services",
        description="Every service that declares an `openapi` path, with the URL of its "
        "rewritten document and, when the upstream could not be reached, why.",
        responses={200: ServiceDocsStatusSerializer(many=True)},
        examples=[
            OpenApiExample(
                "Two services, one down",
                value=[
                    {
                        "name": "rd-service",
                        "spec_url": "/api/docs/services/rd-service/openapi.json",
                        "docs_url": "/api/docs?service=rd-service",
                        "available": True,
                        "error": None,
                        "policies": [
                            {
                                "route": "/api/v1/rd/**",
                                "notes": [
                                    "Requests are validated against the service's OpenAPI "
                                    "schema (400 `errors[]`).",
                                    "Browsers may call it from https://app.example.com (CORS: "
                                    "methods GET, POST; without credentials).",
                                ],
                                "validated_operations": ["GET /api/v1/rd/tasks"],
                            }
                        ],
                    },
                    {
                        "name": "billing",
                        "spec_url": "/api/docs/services/billing/openapi.json",
                        "docs_url": "/api/docs?service=billing",
                        "available": False,
                        "error": "the upstream could not be reached",
                        "policies": [],
                    },
                ],
                response_only=True,
            )
        ],
    )
    def get(self, request: Request) -> Response:
        """The portal's services."""
        rows = []
        for service in documented_services():
            fetched = service_document(service, server_url=gateway_url(request))
            rows.append(
                {
                    "name": service.name,
                    "spec_url": _spec_url(service.name),
                    "docs_url": f"{reverse('swagger-ui')}?service={service.name}",
                    "available": fetched.error is None,
                    "error": fetched.error,
                    "policies": route_policies(service, fetched),
                }
            )
        return Response(rows)


class ServiceSpecView(APIView):
    """A service's OpenAPI document, rewritten to what a client of the gateway sees."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["developer portal"],
        summary="Get a service's OpenAPI document as seen through the gateway",
        description="The service's own document, fetched from its first target and cached "
        "(refreshed when the config changes or after GATEWAY_DOCS_CACHE_TTL), rewritten: paths "
        "under the routes that expose them (respecting strip_prefix), only the operations some "
        "route exposes, `servers` pointing at the gateway, and each operation's security, "
        "rate limit and the route policies a caller must know (a sentence in `description` and "
        "an `x-gateway-policies` extension: validation, CORS origins, cache, IP restriction, "
        "WebSocket; `x-gateway-route-policies` sums them up per route). 404 for a service without `openapi`; 503 when the upstream failed.",
        responses={
            200: OpenApiTypes.OBJECT,
            **docs.errors(404),
            (503, "application/problem+json"): docs.problem(
                503,
                "The upstream document could not be fetched; `detail` says why.",
                {
                    "type": "urn:gateway:problem:docs_unavailable",
                    "title": "Service unavailable",
                    "status": 503,
                    "detail": "Docs for rd-service: the upstream answered 500.",
                    "code": "docs_unavailable",
                    "request_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                },
            ),
        },
        examples=[
            OpenApiExample(
                "A rewritten document",
                value={
                    "openapi": "3.0.3",
                    "info": {"title": "rd tasks API", "version": "1.0.0"},
                    "servers": [{"url": "https://gateway.example.com"}],
                    "paths": {
                        "/api/v1/rd/tasks": {
                            "get": {
                                "operationId": "listTasks",
                                "security": [{"jwtAuth": []}, {"oauth2": []}, {"apiKeyAuth": []}],
                                "responses": {"200": {"description": "All tasks"}},
                            }
                        }
                    },
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, name: str) -> Response:
        """The rewritten document, or why it is unavailable."""
        if not _SERVICE_NAME.fullmatch(name):
            raise Http404  # not a service name (and never sent to the database)
        service = get_object_or_404(
            Service.objects.exclude(openapi="").prefetch_related("targets"), name=name
        )
        result = service_document(service, server_url=gateway_url(request))
        if result.spec is None:
            raise DocsUnavailable(f"Docs for {name}: {result.error}.")
        return Response(result.spec)


# drf-spectacular resolves its extensions' target classes on first use, without a lock: two
# schema requests at once in a fresh worker could see one's failed import half done (a 500).
_schema_generation = threading.Lock()


class GatewaySchemaView(SpectacularJSONAPIView):
    """The management API's OpenAPI document, generated by one thread at a time."""

    @extend_schema(**SCHEMA_KWARGS)  # described (or not) as drf-spectacular's own view
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """drf-spectacular's document."""
        with _schema_generation:
            return super().get(request, *args, **kwargs)


class GatewaySwaggerView(SpectacularSwaggerView):
    """Swagger UI whose definition selector lists the gateway's API and every service."""

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The page, with `?service=NAME` preselecting that service."""
        response = super().get(request, *args, **kwargs)
        urls = [{"url": self._get_schema_url(request), "name": "Gateway management API"}]
        names = [service.name for service in documented_services()]
        urls += [{"url": _spec_url(name), "name": f"Service: {name}"} for name in names]
        config: dict[str, Any] = {
            "deepLinking": True,
            "persistAuthorization": True,
            "displayRequestDuration": True,
            "validatorUrl": None,
            "urls": urls,
            "layout": "StandaloneLayout",
        }
        wanted = request.query_params.get("service")
        if wanted in names:
            config["urls.primaryName"] = f"Service: {wanted}"
        # The standalone preset draws the definition selector; it is a JS value, not JSON.
        body = json.dumps(config).replace("<", "\\u003c")
        presets = "[SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset]"
        response.data["settings"] = body[:-1] + f', "presets": {presets}}}'
        return response


# ReDoc's bundle draws a "Redocly" logo from this CDN address in its sidebar; the page's CSP
# refuses it (a console error). The bundle is served with a blank inline image instead.
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_BLANK_IMAGE = (
    b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E"
)
_REDOC_BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"


@functools.cache
def _redoc_bundle() -> bytes:
    found = finders.find(_REDOC_BUNDLE)
    if not isinstance(found, str):
        raise Http404("ReDoc is not installed.")
    return Path(found).read_bytes().replace(_REDOC_LOGO, _BLANK_IMAGE)


def redoc_bundle(request: HttpRequest) -> HttpResponse:
    """ReDoc's standalone script, with no request leaving the gateway (no CDN logo)."""
    response = HttpResponse(_redoc_bundle(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=86400"
    return response


class GatewayRedocView(SpectacularRedocView):
    """ReDoc without web fonts or a logo from a CDN; `?service=NAME` shows that service's document."""

    template_name = "routing/redoc.html"

    @staticmethod
    def _redoc_standalone() -> str:
        return reverse("redoc-bundle")

    def _get_schema_url(self, request: Request) -> str:
        wanted = request.query_params.get("service")
        if wanted and _SERVICE_NAME.fullmatch(wanted) and _documented(wanted):
            return _spec_url(wanted)
        return str(super()._get_schema_url(request))

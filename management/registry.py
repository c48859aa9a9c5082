"""The registry API: services register, heartbeat and deregister their own targets.

    POST   /api/gateway/registry/register   {"service", "url", "weight"?, "ttl"?}
    POST   /api/gateway/registry/heartbeat  {"service", "url"}
    DELETE /api/gateway/registry/register   {"service", "url"}

Every call needs `Authorization: Bearer <GATEWAY_REGISTRATION_TOKEN>`.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.urls import path
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway_project.units import format_duration_ms, parse_duration_ms
from routing.models import service_name_validator, validate_upstream_url
from routing.registration import Lease, target_deregister, target_heartbeat, target_register
from routing.resilience_errors import RegistrationDisabled, RegistrationUnauthorized

_MIN_TTL_MS = 1_000
_MAX_TTL_MS = 3_600_000


@extend_schema_field({"oneOf": [{"type": "string", "example": "30s"}, {"type": "number"}]})
class TtlField(serializers.Field):
    """A lease length: a duration like "30s", or a number of seconds."""

    def to_internal_value(self, data: Any) -> int:
        """Milliseconds, within 1s..1h."""
        try:
            if isinstance(data, bool):
                raise ValueError
            ms = int(data * 1000) if isinstance(data, int | float) else parse_duration_ms(data)
        except (TypeError, ValueError):
            raise serializers.ValidationError(
                'Give a duration like "30s" or a number of seconds.'
            ) from None
        if not _MIN_TTL_MS <= ms <= _MAX_TTL_MS:
            raise serializers.ValidationError("The ttl must be between 1s and 1h.")
        return ms

    def to_representation(self, value: int) -> str:
        """As a duration string."""
        return format_duration_ms(value)


class TargetSerializer(serializers.Serializer):
    """Names one target of one service."""

    service = serializers.CharField(max_length=100, validators=[service_name_validator])
    url = serializers.CharField(max_length=500, validators=[validate_upstream_url])


class RegisterSerializer(TargetSerializer):
    """A registration: the target, its weight and the lease length."""

    weight = serializers.IntegerField(min_value=0, max_value=1_000_000, default=100)
    ttl = TtlField(required=False)


class LeaseSerializer(serializers.Serializer):
    """A target's lease, as the registry answers it (for the docs)."""

    service = serializers.CharField()
    url = serializers.CharField()
    weight = serializers.IntegerField()
    ttl = serializers.CharField()
    expires_at = serializers.DateTimeField()


_TARGET_EXAMPLE = {"service": "rd-service", "url": "http://10.0.0.7:9001"}
_LEASE_EXAMPLE = OpenApiExample(
    "lease",
    value={**_TARGET_EXAMPLE, "weight": 100, "ttl": "30s", "expires_at": "2026-11-26T22:00:30Z"},
    response_only=True,
)
_REGISTRY_DOC = (
    " Authenticate with `Authorization: Bearer <GATEWAY_REGISTRATION_TOKEN>`: 401 without or "
    "with a wrong token, 403 when the gateway has no registration token set."
)


def _registry_errors(*statuses: int) -> dict[Any, OpenApiResponse]:
    from management.api.schema import errors

    return errors(*statuses)


def _lease_body(lease: Lease) -> dict[str, Any]:
    return {
        "service": lease.service,
        "url": lease.url,
        "weight": lease.weight,
        "ttl": format_duration_ms(lease.ttl_ms),
        "expires_at": lease.expires_at.isoformat().replace("+00:00", "Z"),
    }


class RegistryView(APIView):
    """Base of the registry views: the registration token instead of users."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """Check the registration token (constant-time) before anything else."""
        expected = settings.GATEWAY_REGISTRATION_TOKEN
        if not expected:
            raise RegistrationDisabled()
        scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), expected.encode()
        ):
            raise RegistrationUnauthorized(headers={"WWW-Authenticate": 'Bearer realm="registry"'})
        super().initial(request, *args, **kwargs)


class RegisterView(RegistryView):
    """POST registers a target (201 when new); DELETE deregisters it (204)."""

    @extend_schema(
        tags=["Registry"],
        summary="Register a target",
        description="A service instance adds itself to a service's targets for `ttl` "
        "(default GATEWAY_REGISTRATION_TTL); it leaves rotation unless it heartbeats before "
        "then. 201 when new, 200 when renewed." + _REGISTRY_DOC,
        request=RegisterSerializer,
        responses={
            201: OpenApiResponse(LeaseSerializer, description="Registered."),
            200: OpenApiResponse(LeaseSerializer, description="Already registered; renewed."),
            **_registry_errors(400, 401, 403, 409),
        },
        examples=[
            OpenApiExample(
                "register",
                value={**_TARGET_EXAMPLE, "weight": 100, "ttl": "30s"},
                request_only=True,
            ),
            _LEASE_EXAMPLE,
        ],
    )
    def post(self, request: Request) -> Response:
        """Register or re-register a target."""
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        lease = target_register(
            service=data["service"],
            url=data["url"],
            weight=data["weight"],
            ttl_ms=data.get("ttl") or settings.GATEWAY_REGISTRATION_TTL_MS,
        )
        return Response(_lease_body(lease), status=201 if lease.created else 200)

    @extend_schema(
        tags=["Registry"],
        summary="Deregister a target",
        description="A service instance leaves rotation at once (JSON body, or ?service=&url=)."
        + _REGISTRY_DOC,
        request=TargetSerializer,
        responses={
            204: OpenApiResponse(description="Deregistered."),
            **_registry_errors(400, 401, 403, 404, 409),
        },
        examples=[OpenApiExample("deregister", value=_TARGET_EXAMPLE, request_only=True)],
    )
    def delete(self, request: Request) -> Response:
        """Deregister a target (JSON body, or ?service=&url= in the query)."""
        serializer = TargetSerializer(data=request.data or request.query_params)
        serializer.is_valid(raise_exception=True)
        target_deregister(**serializer.validated_data)
        return Response(status=204)


class HeartbeatView(RegistryView):
    """POST extends a registered target's lease."""

    @extend_schema(
        tags=["Registry"],
        summary="Heartbeat",
        description="Extends a registered target's lease by its ttl." + _REGISTRY_DOC,
        request=TargetSerializer,
        responses={
            200: OpenApiResponse(LeaseSerializer, description="Lease extended."),
            **_registry_errors(400, 401, 403, 404, 409),
        },
        examples=[
            OpenApiExample("heartbeat", value=_TARGET_EXAMPLE, request_only=True),
            _LEASE_EXAMPLE,
        ],
    )
    def post(self, request: Request) -> Response:
        """Extend the lease by the target's TTL."""
        serializer = TargetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lease = target_heartbeat(**serializer.validated_data)
        return Response(_lease_body(lease))


urlpatterns = [
    path("register", RegisterView.as_view(), name="registry-register"),
    path("heartbeat", HeartbeatView.as_view(), name="registry-heartbeat"),
]

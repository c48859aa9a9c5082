"""Errors of the resilience layer: open circuits, no healthy target, registry credentials."""

from __future__ import annotations

from gateway_project.errors import GatewayError, ServiceUnavailable


class CircuitOpen(ServiceUnavailable):
    """The route's circuit breaker is open: the upstream is not contacted."""

    default_code = "circuit_open"
    default_detail = "The upstream service is failing; the gateway is not sending it requests."


class NoHealthyTarget(ServiceUnavailable):
    """Every target of the service is unhealthy, ejected, drained or unregistered."""

    default_code = "no_healthy_target"
    default_detail = "The service has no healthy target right now."


class RegistrationUnauthorized(GatewayError):
    """The registry call lacks the registration credential, or it is wrong."""

    status_code = 401
    default_code = "registration_unauthorized"
    default_detail = "Give the registration token as 'Authorization: Bearer <token>'."
    title = "Unauthorized"


class RegistrationDisabled(GatewayError):
    """No registration token is configured, so the registry is closed."""

    status_code = 403
    default_code = "registration_disabled"
    default_detail = "Self-registration is off: GATEWAY_REGISTRATION_TOKEN is not set."
    title = "Forbidden"


class TargetNotRegistered(GatewayError):
    """A heartbeat or deregistration names a target that is not registered."""

    status_code = 404
    default_code = "target_not_registered"
    default_detail = "No registered target with that service and url; register it first."
    title = "Not found"

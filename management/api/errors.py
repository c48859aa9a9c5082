"""The management API's errors: config problems as 400 `errors`, duplicates as 409, 413."""

from __future__ import annotations

from rest_framework import exceptions as drf
from rest_framework.exceptions import ErrorDetail

from gateway_project.errors import GatewayError
from routing.configfile.validate import ConfigError


class Conflict(GatewayError):
    """The change collides with something that exists (a duplicate name, a route in use)."""

    status_code = 409
    default_code = "conflict"
    default_detail = "The change conflicts with the current configuration."
    title = "Conflict"


class ConfigDocumentTooLarge(GatewayError):
    """A config document over GATEWAY_MAX_CONFIG_SIZE; it was not parsed."""

    status_code = 413
    default_code = "config_too_large"
    default_detail = "The config document is larger than GATEWAY_MAX_CONFIG_SIZE."
    title = "Payload too large"


def config_errors(errors: list[ConfigError]) -> drf.ValidationError:
    """The config checker's errors as a DRF ValidationError keyed by config location."""
    detail: dict[str, list[ErrorDetail]] = {}
    for error in errors:
        message = f"{error.place}: {error.message}" if error.line else error.message
        detail.setdefault(error.location or "non_field_errors", []).append(
            ErrorDetail(message, code="invalid")
        )
    return drf.ValidationError(detail)

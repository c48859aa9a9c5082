"""Why a rollback was refused."""

from __future__ import annotations

from rest_framework import status

from gateway_project.errors import GatewayError


class RollbackRefused(GatewayError):
    """The old version no longer passes validation (e.g. its service was deleted since)."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "rollback_refused"
    title = "Rollback refused"

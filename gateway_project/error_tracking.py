"""Error tracking: every 5xx the gateway produces is logged with its request id and cause."""

from __future__ import annotations

import logging
from typing import Any

from gateway_project import metrics

logger = logging.getLogger("gateway.errors")

_CAUSE_LIMIT = 500


def remember_cause(request: Any, *, code: str, cause: BaseException | None) -> None:
    """Note on the Django request which error the gateway answered with, for the log line."""
    if request is None:
        return
    request.gateway_error = code
    if cause is not None:
        request.gateway_error_cause = f"{type(cause).__name__}: {cause}"[:_CAUSE_LIMIT]


def upstream_error_kind(code: str) -> str:
    """The `kind` label of an upstream failure: the code without its `upstream_` prefix."""
    return code.removeprefix("upstream_")


def report_server_error(
    *,
    request_id: str | None,
    status: int,
    code: str,
    cause: str | None,
    route: str,
    service: str | None,
) -> None:
    """Log and count one gateway-produced 5xx (the client only ever sees problem+json)."""
    logger.error(
        "gateway answered %s code=%s request_id=%s route=%s cause=%s",
        status,
        code,
        request_id,
        route,
        cause or "unknown",
    )
    metrics.count_server_error(code)
    if service is not None and code != "internal_error":
        metrics.count_upstream_error(service, upstream_error_kind(code))

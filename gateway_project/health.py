"""Liveness and readiness endpoints."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from gateway_project import drain
from gateway_project.errors import PROBLEM_CONTENT_TYPE, problem_body
from gateway_project.redis import redis_client

logger = logging.getLogger("gateway.health")


@require_safe
def liveness(request: HttpRequest) -> HttpResponse:
    """The process is up and serving."""
    return JsonResponse({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        logger.warning("readiness: database unreachable")
        return False


def _redis_ok() -> bool | None:
    client = redis_client()
    if client is None:
        return None
    try:
        return bool(client.ping())
    except Exception:
        logger.warning("readiness: Redis unreachable")
        return False


@require_safe
def readiness(request: HttpRequest) -> HttpResponse:
    """Ready when the database (and Redis, if configured) answer; 503 naming what failed."""
    if drain.is_draining():  # shutting down: tell the load balancer first, skip the checks
        body = problem_body(
            status=503,
            code="draining",
            title="Service unavailable",
            detail="This node is shutting down.",
            request_id=getattr(request, "request_id", None),
        )
        return JsonResponse(body, status=503, content_type=PROBLEM_CONTENT_TYPE)
    checks = {"database": "ok" if _database_ok() else "unavailable"}
    redis_ok = _redis_ok()
    if redis_ok is not None:
        checks["redis"] = "ok" if redis_ok else "unavailable"
    failed = [name for name, state in checks.items() if state != "ok"]
    if not failed:
        return JsonResponse({"status": "ok", "checks": checks})
    body = problem_body(
        status=503,
        code="dependency_unavailable",
        title="Service unavailable",
        detail=f"Not ready: {', '.join(failed)} unavailable.",
        request_id=getattr(request, "request_id", None),
    )
    body["checks"] = checks
    return JsonResponse(body, status=503, content_type=PROBLEM_CONTENT_TYPE)

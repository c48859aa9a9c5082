"""What each worker does once, when the WSGI application loads (after gunicorn's fork)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from routing.healthcheck import start_in_process_checker
from routing.table import route_tables

logger = logging.getLogger("gateway.startup")


class WorkerStartupMiddleware:
    """Compiles the route table and starts the in-process checker, then steps aside.

    Compiling at load rather than on the first request means a worker that has served nothing
    yet still has a table to serve from if the database becomes unreachable later.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        try:
            route_tables.get()
        except Exception:
            # The database is not reachable yet: the first request compiles instead.
            logger.warning("could not compile the route table at startup", exc_info=True)
        if settings.GATEWAY_HEALTHCHECK_IN_PROCESS:
            start_in_process_checker()
        raise MiddlewareNotUsed()

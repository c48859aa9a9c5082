"""The route page's panels: live traffic, an "Explain a request" box and the CORS preview."""

from __future__ import annotations

import logging
from typing import Any

from gateway_project.dashboard import route_traffic
from management.console_cors import cors_preview_context
from routing.admin import try_path
from routing.models import Route

logger = logging.getLogger("gateway.dashboard")


def route_page_context(route: Route | None) -> dict[str, Any]:
    """What the route's page shows beside its form (a new route: only the CORS preview)."""
    from management.console import ExplainForm  # the console's pages import the admin's models

    preview = cors_preview_context(route)
    if route is None:
        return preview

    try:
        traffic = route_traffic(route=str(route))
        unavailable = False
    except Exception:  # the traffic store is down: the page still opens, with a note
        logger.warning("route traffic unavailable", exc_info=True)
        traffic, unavailable = [], True
    methods = route.method_list
    explain_form = ExplainForm(
        initial={"method": methods[0] if methods else "GET", "path": try_path(route.path)},
        auto_id="id_explain_%s",  # the route's own form has an id_path field on the same page
    )
    return {
        **preview,
        "route_traffic": traffic,
        "route_traffic_unavailable": unavailable,
        "explain_form": explain_form,
    }

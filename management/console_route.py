"""The route page's panels: its live traffic (the dashboard's data) and an "Explain a request" box."""

from __future__ import annotations

import logging
from typing import Any

from gateway_project.dashboard import route_traffic
from routing.admin import try_path
from routing.models import Route

logger = logging.getLogger("gateway.dashboard")


def route_page_context(route: Route) -> dict[str, Any]:
    """What the route's change page shows beside its form."""
    from management.console import ExplainForm  # the console's pages import the admin's models

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
        "route_traffic": traffic,
        "route_traffic_unavailable": unavailable,
        "explain_form": explain_form,
    }

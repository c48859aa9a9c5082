"""Template tags of the console dashboard (`{% load traffic_dashboard %}`)."""

from __future__ import annotations

import logging
from typing import Any

from django import template

from gateway_project.dashboard import traffic_windows

register = template.Library()
logger = logging.getLogger("gateway.dashboard")


@register.inclusion_tag("admin/traffic_dashboard.html")
def traffic_dashboard() -> dict[str, Any]:
    """Render the traffic charts; an unavailable store shows a note instead of breaking."""
    try:
        return {"windows": traffic_windows(), "unavailable": False}
    except Exception:
        logger.warning("dashboard data unavailable", exc_info=True)
        return {"windows": [], "unavailable": True}

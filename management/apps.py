"""The management app: the management REST API, the console's own pages and the docs portal."""

from __future__ import annotations

from django.apps import AppConfig


class ManagementConfig(AppConfig):
    """Puts the console's permission table in front of every model page when Django starts."""

    name = "management"
    verbose_name = "Management"

    def ready(self) -> None:
        """Guard every registered ModelAdmin (autodiscovered before this); add the route panels."""
        from django.contrib import admin

        from management.console_access import enforce_table
        from management.console_route import route_page_context
        from routing.admin import RouteAdmin

        enforce_table(admin.site)
        RouteAdmin.page_panels = staticmethod(route_page_context)

"""The management app: the management REST API, the console's own pages and the docs portal."""

from __future__ import annotations

from django.apps import AppConfig


class ManagementConfig(AppConfig):
    """Puts the console's permission table in front of every model page when Django starts."""

    name = "management"
    verbose_name = "Management"

    def ready(self) -> None:
        """Guard every registered ModelAdmin (the admin autodiscovered them all before this)."""
        from django.contrib import admin

        from management.console_access import enforce_table

        enforce_table(admin.site)

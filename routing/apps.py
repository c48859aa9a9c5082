"""The routing app: services, routes and the proxy."""

from __future__ import annotations

from django.apps import AppConfig


class RoutingConfig(AppConfig):
    """Connects the config-version signals when Django starts."""

    name = "routing"
    verbose_name = "Routing"

    def ready(self) -> None:
        """Connect the signals that bump the config version."""
        from routing import signals

        signals.connect()

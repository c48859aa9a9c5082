"""The routing app: services, routes and the proxy."""

from __future__ import annotations

from django.apps import AppConfig


class RoutingConfig(AppConfig):
    """Connects the config-version signals when Django starts."""

    name = "routing"
    verbose_name = "Routing"

    def ready(self) -> None:
        """Connect the config-version signals; hand the ground and audit what they ask of us."""
        from routing import signals

        signals.connect()
        _register_with_lower_layers()


def _register_with_lower_layers() -> None:
    """What gateway_project and audit know of routing: only what is registered here."""
    from audit import registry
    from gateway_project import extensions
    from routing.models import Route, Service, Target
    from routing.pipeline import context_of
    from routing.proxy import BufferedProxiedResponse, StreamedProxiedResponse
    from routing.table import route_tables

    extensions.register_relayed_response(BufferedProxiedResponse, StreamedProxiedResponse)
    extensions.register_config_version(lambda: route_tables.get().version)
    extensions.register_request_context(context_of)
    # The traffic config, recorded; a service before its targets and routes.
    registry.tracked(Service, section="services")
    registry.tracked(Target, section="targets")
    registry.tracked(Route, section="routes")

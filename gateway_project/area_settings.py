"""Per-area settings objects: each area's GATEWAY_* variables, read once, typed and frozen.

django-oauth-toolkit's pattern: an area reads `settings.GATEWAY_<AREA>.<field>` instead of a
loose set of flat names, so what belongs together is declared together and a test overrides
an area with `dataclasses.replace`. Each `from_env` reads the environment through
gateway_project.env's helpers; a bad value raises ImproperlyConfigured naming the variable.
Variable names and defaults are the contract (README's settings table); they never change here.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway_project.env import env_networks, env_secret
from gateway_project.net import IPNetwork


@dataclass(frozen=True)
class MetricsSettings:
    """Who may scrape /metrics: open unless a token and/or address list is set (each one set
    must then pass)."""

    token: str | None = None  # GATEWAY_METRICS_TOKEN
    allowed_networks: tuple[IPNetwork, ...] = ()  # GATEWAY_METRICS_ALLOWED_NETWORKS

    @classmethod
    def from_env(cls) -> MetricsSettings:
        """Read GATEWAY_METRICS_TOKEN(_FILE) and GATEWAY_METRICS_ALLOWED_NETWORKS."""
        return cls(
            token=env_secret("GATEWAY_METRICS_TOKEN"),
            allowed_networks=env_networks("GATEWAY_METRICS_ALLOWED_NETWORKS", []),
        )


@dataclass(frozen=True)
class AdminPlaneSettings:
    """Source addresses that may reach the console, the management API and the API docs;
    empty: any address (credentials still required)."""

    allowed_networks: tuple[IPNetwork, ...] = ()  # GATEWAY_ADMIN_ALLOWED_NETWORKS

    @classmethod
    def from_env(cls) -> AdminPlaneSettings:
        """Read GATEWAY_ADMIN_ALLOWED_NETWORKS."""
        return cls(allowed_networks=env_networks("GATEWAY_ADMIN_ALLOWED_NETWORKS", []))

"""The canonical, validated form of a config: what import compares and applies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RouteKey = tuple[str, str]  # (path, comma-joined sorted methods; "" for every method)
QuotaKey = tuple[str, str]  # ("role" | "user" | "client", name)


@dataclass
class ConfigSpec:
    """Services, routes, roles and quotas as plain canonical dicts, keyed by identity."""

    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    routes: dict[RouteKey, dict[str, Any]] = field(default_factory=dict)
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    quotas: dict[QuotaKey, dict[str, Any]] = field(default_factory=dict)


def public_values(values: dict[str, Any]) -> dict[str, Any]:
    """A spec entry without its bookkeeping keys (like `_location`)."""
    return {k: v for k, v in values.items() if not k.startswith("_")}


def route_label(key: RouteKey) -> str:
    """A readable name for a route key, e.g. `GET,POST /api/v1/rd/**`."""
    path, methods = key
    return f"{methods or 'ANY'} {path}"

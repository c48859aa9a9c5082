"""Writing a ConfigSpec as the YAML config format (defaults left out)."""

from __future__ import annotations

from typing import Any

import yaml

from gateway_project.units import format_duration_ms
from routing.configfile.spec import (
    ConfigSpec,
    CorsSpec,
    HeaderRulesSpec,
    QuotaKey,
    QuotaSpec,
    RoleSpec,
    RouteSpec,
    ServiceSpec,
)


def service_entry(values: ServiceSpec) -> dict[str, Any]:
    """A service spec as its compact config-file entry (defaults left out)."""
    out: dict[str, Any] = {"name": values.name}
    if values.url:
        out["url"] = values.url
    else:
        out["targets"] = [{"url": t.url, "weight": t.weight} for t in values.targets]
    if values.openapi:
        out["openapi"] = values.openapi
    if values.health_check:
        out["health_check"] = {
            "path": values.health_check.path,
            "interval": format_duration_ms(values.health_check.interval_ms),
        }
    if values.connect_timeout_ms:
        out["connect_timeout"] = format_duration_ms(values.connect_timeout_ms)
    if values.load_balancing != "round_robin":
        out["load_balancing"] = values.load_balancing
    if values.description:
        out["description"] = values.description
    return out


def cors_entry(cors: CorsSpec) -> dict[str, Any]:
    """A CORS spec as its config-file entry (defaults left out)."""
    out: dict[str, Any] = {"origins": list(cors.origins)}
    for key, names in (
        ("methods", cors.methods),
        ("headers", cors.headers),
        ("expose_headers", cors.expose_headers),
    ):
        if names:
            out[key] = list(names)
    if cors.credentials:
        out["credentials"] = True
    if cors.max_age_ms is not None:
        out["max_age"] = format_duration_ms(cors.max_age_ms)
    return out


def header_rules_entry(rules: HeaderRulesSpec) -> dict[str, Any]:
    """Header rules as their config-file entry: {set: {name: value}, remove: [names]}."""
    out: dict[str, Any] = {}
    if rules.set:
        out["set"] = dict(rules.set)
    if rules.remove:
        out["remove"] = list(rules.remove)
    return out


def route_entry(values: RouteSpec) -> dict[str, Any]:
    """A route spec as its compact config-file entry (defaults left out)."""
    out: dict[str, Any] = {"path": values.path, "service": values.service}
    if values.methods:
        out["methods"] = list(values.methods)
    if values.strip_prefix:
        out["strip_prefix"] = True
    if values.timeout_ms:
        out["timeout"] = format_duration_ms(values.timeout_ms)
    if values.retry:
        out["retry"] = values.retry
    if values.circuit_breaker:
        out["circuit_breaker"] = {
            "threshold": values.circuit_breaker.threshold,
            "timeout": format_duration_ms(values.circuit_breaker.timeout_ms),
        }
    rate = values.rate_limit
    if rate:
        out["rate_limit"] = {f"requests_per_{rate.period}": rate.requests}
        if rate.burst:
            out["rate_limit"]["burst"] = rate.burst
        if rate.algorithm != "token_bucket":
            out["rate_limit"]["algorithm"] = rate.algorithm
        if not rate.headers:
            out["rate_limit"]["headers"] = False
    out["authentication"] = values.authentication
    if values.permissions:
        out["permissions"] = list(values.permissions)
    if values.roles:
        out["roles"] = list(values.roles)
    if values.priority:
        out["priority"] = values.priority
    if not values.enabled:
        out["enabled"] = False
    if values.description:
        out["description"] = values.description
    out.update(policy_entries(values))
    return out


def policy_entries(values: RouteSpec) -> dict[str, Any]:
    """A route's policy keys (CONTRACT section 5) as config-file entries; unset ones left out."""
    out: dict[str, Any] = {}
    if values.hide_credentials:
        out["hide_credentials"] = True
    if values.ip_allow:
        out["ip_allow"] = list(values.ip_allow)
    if values.ip_deny:
        out["ip_deny"] = list(values.ip_deny)
    if values.cors:
        out["cors"] = cors_entry(values.cors)
    if values.request_headers:
        out["request_headers"] = header_rules_entry(values.request_headers)
    if values.response_headers:
        out["response_headers"] = header_rules_entry(values.response_headers)
    if values.validate:
        out["validate"] = True
    if values.cache:
        out["cache"] = {"ttl": format_duration_ms(values.cache.ttl_ms)}
    if values.websocket:
        out["websocket"] = True
    return out


def role_entry(values: RoleSpec) -> dict[str, Any]:
    """A role spec as its config-file entry."""
    out: dict[str, Any] = {"name": values.name, "permissions": list(values.permissions)}
    if values.description:
        out["description"] = values.description
    return out


def quota_entry(key: QuotaKey, values: QuotaSpec) -> dict[str, Any]:
    """A quota spec as its config-file entry, e.g. {role: developer, requests_per_day: 5}."""
    kind, name = key
    out: dict[str, Any] = {kind: name}
    if values.requests_per_day is not None:
        out["requests_per_day"] = values.requests_per_day
    if values.requests_per_month is not None:
        out["requests_per_month"] = values.requests_per_month
    return out


def export_document(spec: ConfigSpec) -> dict[str, Any]:
    """The config file's document for `spec`, as plain data."""
    return {
        "services": [service_entry(v) for _, v in sorted(spec.services.items())],
        "routes": [route_entry(v) for _, v in sorted(spec.routes.items())],
        "roles": [role_entry(v) for _, v in sorted(spec.roles.items())],
        "quotas": [quota_entry(key, values) for key, values in sorted(spec.quotas.items())],
    }


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a value shared by two entries out twice: the importer refuses aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        """Never emit `&anchor` / `*alias`."""
        return True


def export_yaml(spec: ConfigSpec) -> str:
    """The config file text for `spec`."""
    return yaml.dump(
        export_document(spec),
        Dumper=_NoAliasDumper,
        sort_keys=False,
        default_flow_style=False,
        width=100,
    )

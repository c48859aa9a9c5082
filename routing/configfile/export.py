"""Writing a ConfigSpec as the YAML config format (defaults left out)."""

from __future__ import annotations

from typing import Any

import yaml

from gateway_project.units import format_duration_ms
from routing.configfile.spec import ConfigSpec, QuotaKey


def service_entry(values: dict[str, Any]) -> dict[str, Any]:
    """A canonical service as its compact config-file entry (defaults left out)."""
    out: dict[str, Any] = {"name": values["name"]}
    if values["url"]:
        out["url"] = values["url"]
    else:
        out["targets"] = [dict(t) for t in values["targets"]]
    if values["openapi"]:
        out["openapi"] = values["openapi"]
    if values["health_check"]:
        out["health_check"] = {
            "path": values["health_check"]["path"],
            "interval": format_duration_ms(values["health_check"]["interval_ms"]),
        }
    if values["connect_timeout_ms"]:
        out["connect_timeout"] = format_duration_ms(values["connect_timeout_ms"])
    if values.get("load_balancing", "round_robin") != "round_robin":
        out["load_balancing"] = values["load_balancing"]
    if values["description"]:
        out["description"] = values["description"]
    return out


def route_entry(values: dict[str, Any]) -> dict[str, Any]:
    """A canonical route as its compact config-file entry (defaults left out)."""
    out: dict[str, Any] = {"path": values["path"], "service": values["service"]}
    if values["methods"]:
        out["methods"] = list(values["methods"])
    if values["strip_prefix"]:
        out["strip_prefix"] = True
    if values["timeout_ms"]:
        out["timeout"] = format_duration_ms(values["timeout_ms"])
    if values["retry"]:
        out["retry"] = values["retry"]
    if values["circuit_breaker"]:
        out["circuit_breaker"] = {
            "threshold": values["circuit_breaker"]["threshold"],
            "timeout": format_duration_ms(values["circuit_breaker"]["timeout_ms"]),
        }
    rate = values["rate_limit"]
    if rate:
        out["rate_limit"] = {f"requests_per_{rate['period']}": rate["requests"]}
        if rate["burst"]:
            out["rate_limit"]["burst"] = rate["burst"]
        if rate["algorithm"] != "token_bucket":
            out["rate_limit"]["algorithm"] = rate["algorithm"]
        if not rate["headers"]:
            out["rate_limit"]["headers"] = False
    out["authentication"] = values["authentication"]
    if values["permissions"]:
        out["permissions"] = list(values["permissions"])
    if values["roles"]:
        out["roles"] = list(values["roles"])
    if values["priority"]:
        out["priority"] = values["priority"]
    if not values["enabled"]:
        out["enabled"] = False
    if values["description"]:
        out["description"] = values["description"]
    return out


def role_entry(values: dict[str, Any]) -> dict[str, Any]:
    """A canonical role as its config-file entry."""
    out: dict[str, Any] = {"name": values["name"], "permissions": list(values["permissions"])}
    if values["description"]:
        out["description"] = values["description"]
    return out


def quota_entry(key: QuotaKey, values: dict[str, Any]) -> dict[str, Any]:
    """A canonical quota as its config-file entry, e.g. {role: developer, requests_per_day: 5}."""
    kind, name = key
    return {kind: name} | {
        k: v for k, v in values.items() if v is not None and not k.startswith("_")
    }


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

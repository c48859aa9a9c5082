"""Writing a ConfigSpec as the YAML config format (defaults left out)."""

from __future__ import annotations

from typing import Any

import yaml

from gateway_project.units import format_duration_ms
from routing.configfile.spec import ConfigSpec


def _service(values: dict[str, Any]) -> dict[str, Any]:
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
    if values["description"]:
        out["description"] = values["description"]
    return out


def _route(values: dict[str, Any]) -> dict[str, Any]:
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


def export_yaml(spec: ConfigSpec) -> str:
    """The config file text for `spec`."""
    document: dict[str, Any] = {
        "services": [_service(v) for _, v in sorted(spec.services.items())],
        "routes": [_route(v) for _, v in sorted(spec.routes.items())],
        "roles": [
            {"name": v["name"], "permissions": v["permissions"]}
            | ({"description": v["description"]} if v["description"] else {})
            for _, v in sorted(spec.roles.items())
        ],
        "quotas": [
            {kind: name}
            | {k: v for k, v in values.items() if v is not None and not k.startswith("_")}
            for (kind, name), values in sorted(spec.quotas.items())
        ],
    }
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=100)

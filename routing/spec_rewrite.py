"""Rewriting an upstream OpenAPI document into what a client of the gateway sees."""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

from accounts.schema import SECURITY_SCHEMES, TOKEN_SCHEMES
from gateway_project.errors import GatewayError
from routing.paths import BadPath, normalize_path
from routing.table import CompiledRoute, RouteTable

OPERATIONS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_TEMPLATE = re.compile(r"\{[^}/]*\}")
_PERIODS = {1: "second", 60: "minute", 3600: "hour"}


def _concrete(path: str) -> str:
    """A request path for a templated one (`/tasks/{id}` -> `/tasks/1`), to ask the matcher."""
    return _TEMPLATE.sub("1", path)


def gateway_path(route: CompiledRoute, upstream_path: str) -> str | None:
    """Where a client reaches `upstream_path` through `route`, or None when it cannot."""
    if not route.strip_prefix:
        return upstream_path  # forwarded unchanged: the client uses the same path
    pattern = route.pattern.pattern
    if pattern.endswith("/**") and "*" not in pattern[:-3]:
        prefix = pattern[:-3]
        return prefix + upstream_path if upstream_path != "/" else (prefix or "/")
    if "*" not in pattern and upstream_path == "/":
        return pattern
    return None  # a stripped prefix with `*` segments has no single client path


def _exposes(
    table: RouteTable, route: CompiledRoute, method: str, client: str, upstream: str
) -> bool:
    """Whether `method client` reaches `route` (and no other) and arrives as `upstream`."""
    sample = _concrete(client)
    try:
        if normalize_path(sample) != sample:
            return False
        matched = table.match(method.upper(), sample)
    except (BadPath, GatewayError):
        return False
    if matched.id != route.id:
        return False
    forwarded = route.pattern.upstream_path(sample, strip_prefix=route.strip_prefix)
    return forwarded == _concrete(upstream)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:6]


def operation_id(route: CompiledRoute, method: str, upstream_path: str, op: dict[str, Any]) -> str:
    """A stable operationId: the route's pattern plus the upstream operation's own id.

    Derived from what names the operation, never from the order routes are listed in, so
    adding a route renames nothing in a generated SDK. `/api/v1/rd/**` + `listTasks` gives
    `api_v1_rd_listTasks`; `*` segments read `any`, and an upstream operation without an
    id is named by its method and path (`get_tasks_id`).
    """
    pattern = route.pattern.pattern.replace("/**", "").replace("*", "any")
    upstream_id = op.get("operationId")
    name = _slug(str(upstream_id)) if upstream_id else _slug(f"{method} {upstream_path}")
    prefix = _slug(pattern)
    return f"{prefix}_{name}" if prefix else name or _digest(method, upstream_path)


def security_requirement(route: CompiledRoute) -> list[dict[str, list[str]]]:
    """The OpenAPI security of a route: any credential, optionally none, or none at all."""
    if route.authentication == "none":
        return []
    schemes: list[dict[str, list[str]]] = [{name: []} for name in TOKEN_SCHEMES]
    if route.authentication == "optional":
        schemes.append({})
    return schemes


def gateway_note(route: CompiledRoute) -> str:
    """The line added to each operation's description: access rules and rate limit."""
    parts = [
        f"Through the gateway route `{route.pattern.pattern}`: authentication {route.authentication}"
    ]
    if route.permissions:
        parts.append("needs permissions " + ", ".join(sorted(route.permissions)))
    if route.roles:
        parts.append("needs one of the roles " + ", ".join(sorted(route.roles)))
    limit = route.rate_limit
    if limit:
        period = _PERIODS.get(limit.period_seconds, f"{limit.period_seconds} s")
        parts.append(
            f"rate limit {limit.requests} requests per {period} (burst {limit.burst}) per consumer"
        )
    else:
        parts.append("no rate limit")
    return "; ".join(parts) + "."


def _operation(op: dict[str, Any], route: CompiledRoute) -> dict[str, Any]:
    out = copy.deepcopy(op)
    out.pop("servers", None)
    note = gateway_note(route)
    out["description"] = f"{out['description']}\n\n{note}" if out.get("description") else note
    out["security"] = security_requirement(route)
    responses = out.setdefault("responses", {})
    if route.authentication == "required":
        responses.setdefault("401", {"description": "Missing or invalid credentials."})
    if route.permissions or route.roles:
        responses.setdefault("403", {"description": "Lacking a required role or permission."})
    if route.rate_limit:
        responses.setdefault("429", {"description": "Rate limit or quota exceeded."})
    out["x-gateway-route"] = route.pattern.pattern
    return out


def rewrite_spec(
    spec: dict[str, Any], *, service: str, table: RouteTable, server_url: str
) -> dict[str, Any]:
    """`spec` with paths under the routes that expose them, only those operations, the
    gateway as the server, and each operation's security and rate limit."""
    routes = [route for route in table.routes if route.service.name == service]
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for upstream, item in (spec.get("paths") or {}).items():
        if not isinstance(item, dict) or not isinstance(upstream, str):
            continue
        for route in routes:
            client = gateway_path(route, upstream)
            if client is None:
                continue
            for method in OPERATIONS:
                op = item.get(method)
                if not isinstance(op, dict) or (client in paths and method in paths[client]):
                    continue
                if not _exposes(table, route, method, client, upstream):
                    continue
                rewritten = _operation(op, route)
                rewritten["operationId"] = operation_id(route, method, upstream, op)
                if rewritten["operationId"] in operation_ids:  # only if two routes' slugs clash
                    rewritten["operationId"] += "_" + _digest(route.pattern.pattern, method)
                operation_ids.add(rewritten["operationId"])
                target = paths.setdefault(client, {})
                for key in ("summary", "description", "parameters"):
                    if key in item and key not in target:
                        target[key] = copy.deepcopy(item[key])
                target[method] = rewritten
    out = {
        k: copy.deepcopy(v) for k, v in spec.items() if k not in ("paths", "servers", "security")
    }
    info = dict(out.get("info") or {})
    info.setdefault("title", service)
    info.setdefault("version", "unknown")
    info["description"] = (
        (str(info.get("description", "")) + "\n\n").lstrip()
        + f"The `{service}` service as its clients reach it through the gateway: only the "
        "operations its routes expose, with their authentication and rate limits."
    )
    out["info"] = info
    out["servers"] = [{"url": server_url, "description": "The gateway"}]
    out["paths"] = dict(sorted(paths.items()))
    components = out.setdefault("components", {})
    if not isinstance(components, dict):
        components = out["components"] = {}
    schemes = components.setdefault("securitySchemes", {})
    for name in TOKEN_SCHEMES:
        schemes.setdefault(name, absolute_urls(SECURITY_SCHEMES[name], server_url))
    return out


def absolute_urls(scheme: dict[str, Any], server_url: str) -> dict[str, Any]:
    """A security scheme with its OAuth2 endpoints (`/o/token/`) made absolute on the gateway."""
    out = copy.deepcopy(scheme)
    for flow in (out.get("flows") or {}).values():
        for key in ("tokenUrl", "authorizationUrl", "refreshUrl"):
            if str(flow.get(key, "")).startswith("/"):
                flow[key] = server_url + flow[key]
    return out

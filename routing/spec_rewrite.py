"""Rewriting an upstream OpenAPI document into what a client of the gateway sees."""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

from accounts.schema import SECURITY_SCHEMES, TOKEN_SCHEMES
from gateway_project.errors import GatewayError
from routing.caller_notes import operation_extension, operation_notes, route_notes
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


def _operation(op: dict[str, Any], route: CompiledRoute, method: str) -> dict[str, Any]:
    out = copy.deepcopy(op)
    out.pop("servers", None)
    note = " ".join([gateway_note(route), *operation_notes(route, method)])
    out["description"] = f"{out['description']}\n\n{note}" if out.get("description") else note
    out["security"] = security_requirement(route)
    responses = out.setdefault("responses", {})
    if route.authentication == "required":
        responses.setdefault("401", {"description": "Missing or invalid credentials."})
    if route.permissions or route.roles:
        responses.setdefault("403", {"description": "Lacking a required role or permission."})
    if route.rate_limit:
        responses.setdefault("429", {"description": "Rate limit or quota exceeded."})
    if route.validate:
        responses.setdefault("400", {"description": "The request does not match the schema."})
    if route.ip_rules is not None:
        responses.setdefault("403", {"description": "The client address is not allowed."})
    out["x-gateway-route"] = route.pattern.pattern
    extension = operation_extension(route, method)
    if extension:
        out["x-gateway-policies"] = extension
    return out


def policies_summary(
    routes: list[CompiledRoute], validated: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """Per route with caller-visible policies: its pattern, sentences and validated operations.

    `validated` maps a route pattern to the operations (`GET /path`) the document exposes
    through it; the portal's list and the document's `info` both show this summary.
    """
    rows = []
    for route in routes:
        notes = route_notes(route)
        if not notes:
            continue
        row: dict[str, Any] = {"route": route.pattern.pattern, "notes": notes}
        if route.validate:
            row["validated_operations"] = validated.get(route.pattern.pattern, [])
        rows.append(row)
    return rows


def service_policies(table: RouteTable, service: str) -> list[dict[str, Any]]:
    """The policies summary of a service's routes without its document (no operations known)."""
    return policies_summary([r for r in table.routes if r.service.name == service], {})


def _summary_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["Route policies a caller should know:"]
    for row in rows:
        line = f"- `{row['route']}`: " + " ".join(row["notes"])
        if row.get("validated_operations"):
            line += " Validated operations: " + ", ".join(
                f"`{op}`" for op in row["validated_operations"]
            )
            line += "."
        lines.append(line)
    return "\n".join(lines)


def rewrite_spec(
    spec: dict[str, Any], *, service: str, table: RouteTable, server_url: str
) -> dict[str, Any]:
    """`spec` with paths under the routes that expose them, only those operations, the
    gateway as the server, and each operation's security and rate limit."""
    routes = [route for route in table.routes if route.service.name == service]
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    validated: dict[str, list[str]] = {}
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
                rewritten = _operation(op, route, method)
                if route.validate:
                    validated.setdefault(route.pattern.pattern, []).append(
                        f"{method.upper()} {client}"
                    )
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
    summary = policies_summary(routes, validated)
    if summary:
        info["description"] += "\n\n" + _summary_markdown(summary)
        out["x-gateway-route-policies"] = summary
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
